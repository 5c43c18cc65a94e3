package partition

// releaseLease gives up, on the key's owner, a lease that owner granted to a client of this node
// that has disconnected (fetchlock.Forwarded).
func (cl *Cluster) releaseLease(key, token string) {
	v := cl.view.Load()
	owner := v.ring.Owner([]byte(key))
	addr, ok := v.addrs[owner]
	if !ok || owner == cl.self || addr == "" {
		return // the key moved here or its owner left: the lease ended with it
	}
	args := [][]byte{[]byte("FETCHRELEASE"), []byte(key), []byte(token)}
	if _, err := cl.pool.Do(addr, args, 0, cl.cfg.ForwardTimeout); err != nil {
		cl.log.Debug("releasing a disconnected client's lease failed", "key", key, "err", err)
	}
}
