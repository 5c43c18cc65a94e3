package disk

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vela-cache/vela/store"
)

// A group (store.Grouper) is a run of operations that commit together: EXEC's. Its operations
// go to the committer like any write, reads included, each marked with the group. The committer
// applies each in its open transaction and answers it at once, before any commit, so that the
// group's next operation sees it; then, instead of committing, it waits for the group's next
// request, until the one that ends the group, and commits everything in one transaction. A
// crash before that commit keeps none of the group; the caller (EXEC) replies only after it.
//
// Requests of other callers that arrive meanwhile join the same transaction and are answered
// after its commit. The committer waits at most groupWait for a group's next request: past that
// it commits what it holds and the group goes on in the next transaction (counted in
// GroupsSplit), so that a caller that breaks the rule (an operation outside the group's context
// from the group's goroutine, which would wait for the commit the committer waits to make) costs
// a pause and the atomicity of its group, never a deadlock. If the store closes while a group
// is open (a shutdown that stopped waiting for its EXEC), the transaction is rolled back: the
// group's caller has not replied, so keeping none of it is what a crash would keep; the other
// callers' requests in it are committed each on its own.

// groupWait bounds the committer's wait for a group's next request.
const groupWait = time.Second

// group is one open group.
type group struct {
	mu     sync.Mutex
	lost   error // set when a transaction holding some of the group's operations failed
	queued bool  // a request has been made in the group since its last end (the caller's only)
}

// groupKey is the context key of the open group.
type groupKey struct{}

// Group implements store.Grouper.
func (s *Store) Group(ctx context.Context) (context.Context, func() error) {
	g := &group{}
	return context.WithValue(ctx, groupKey{}, g), func() error { return s.endGroup(g) }
}

// groupOf returns the group ctx carries, or nil.
func groupOf(ctx context.Context) *group {
	g, _ := ctx.Value(groupKey{}).(*group)
	return g
}

// endGroup commits what the group holds and reports whether all of it is in the store.
func (s *Store) endGroup(g *group) error {
	if !g.queued {
		return nil
	}
	g.queued = false
	r := &request{kind: reqGroupEnd, group: g, done: make(chan struct{}, 1)}
	if err := s.submit(r); err != nil {
		return err
	}
	return r.err
}

// lose records that the group's operations answered so far were not committed.
func (g *group) lose(err error) {
	g.mu.Lock()
	if g.lost == nil {
		g.lost = fmt.Errorf("disk store: the transaction was not committed: %w", err)
	}
	g.mu.Unlock()
}

func (g *group) lostErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lost
}

// inGroup marks r as an operation of ctx's group, if it has one: it must not come from the
// request pool (the committer still reads it after answering it). It reports whether it is.
func inGroup(ctx context.Context, r *request) bool {
	g := groupOf(ctx)
	if g == nil {
		return false
	}
	r.group = g
	g.queued = true
	return true
}

// syncGroup commits what ctx's group holds so far, before an operation that reads the file
// itself rather than through the committer (SCAN, DBSIZE, the tag index): it would not see the
// group's uncommitted operations. The group goes on in the next transaction.
func (s *Store) syncGroup(ctx context.Context) error {
	if g := groupOf(ctx); g != nil && g.queued {
		s.groupsSplit.Add(1)
		return s.endGroup(g)
	}
	return nil
}

// errGroupAbandoned rolls back a transaction holding an open group when the store closes.
var errGroupAbandoned = fmt.Errorf("%w before the transaction ended", store.ErrClosed)

// nextInGroup waits, on the committer, for the next request while a group is open in its
// transaction: nil when none came within groupWait, or errGroupAbandoned when the store is
// closing.
func (s *Store) nextInGroup() (*request, error) {
	if s.groupTimer == nil {
		s.groupTimer = time.NewTimer(groupWait)
	} else {
		s.groupTimer.Reset(groupWait)
	}
	defer s.groupTimer.Stop()
	select {
	case r := <-s.reqs:
		return r, nil
	case <-s.groupTimer.C:
		s.groupsSplit.Add(1)
		return nil, nil
	case <-s.quit:
		return nil, errGroupAbandoned
	}
}

// GroupsSplit returns how many groups have been committed in more than one transaction (see
// groupWait and syncGroup).
func (s *Store) GroupsSplit() uint64 { return s.groupsSplit.Load() }

var _ store.Grouper = (*Store)(nil)
