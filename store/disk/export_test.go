package disk

// Commits is how many transactions the store has committed.
func (s *Store) Commits() uint64 { return s.commits.Load() }
