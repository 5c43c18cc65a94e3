package commands

import (
	"sync"
	"sync/atomic"
)

// watchedKeys is the node's index of WATCHed keys: for each key, the transactions watching it.
// A change to a key marks them (their next EXEC runs nothing). Every write asks it, so the
// common case, nothing watched, is one atomic load.
type watchedKeys struct {
	count atomic.Int64 // watches in byKey, of every key
	mu    sync.Mutex
	byKey map[string][]*txState
}

// add records that tx watches key.
func (w *watchedKeys) add(key string, tx *txState) {
	w.mu.Lock()
	if w.byKey == nil {
		w.byKey = make(map[string][]*txState)
	}
	w.byKey[key] = append(w.byKey[key], tx)
	w.count.Add(1)
	w.mu.Unlock()
}

// remove drops tx's watch of key.
func (w *watchedKeys) remove(key string, tx *txState) {
	w.mu.Lock()
	list := w.byKey[key]
	for i, t := range list {
		if t == tx {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			w.count.Add(-1)
			break
		}
	}
	if len(list) == 0 {
		delete(w.byKey, key)
	} else {
		w.byKey[key] = list
	}
	w.mu.Unlock()
}

// active reports whether any key is watched.
func (w *watchedKeys) active() bool { return w.count.Load() > 0 }

// touch marks every transaction watching key.
func (w *watchedKeys) touch(key []byte) {
	if !w.active() {
		return
	}
	w.mu.Lock()
	for _, tx := range w.byKey[string(key)] {
		tx.markDirty()
	}
	w.mu.Unlock()
}

// keys returns every watched key, for FLUSHALL to find those that exist.
func (w *watchedKeys) keys() []string {
	if !w.active() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.byKey))
	for k := range w.byKey {
		out = append(out, k)
	}
	return out
}
