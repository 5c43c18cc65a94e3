package redisstore

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/store"
)

// Request coalescing (DESIGN.md: concurrent GETs of one key are served by one fetch) has two
// limits here.
//
//   - A GET does not join a GET sent before a write through this store to its key began or
//     ended (writeEpochs): a client that wrote a key and then reads it must not be answered by
//     a read that Redis ran before the write.
//   - A GET that joined another caller's fetch reports its result as Shared: the fetch was sent
//     before this caller asked, so it may predate a change this caller has already been told
//     of (a near cache's invalidation), and must not be kept.

// writeShards is the number of write epochs; keys share them by hash.
const writeShards = 256

// wrote marks a write to the key with hash h as begun or ended.
func (s *Store) wrote(h uint64) { s.writeEpochs[h%writeShards].Add(1) }

// wroteKey is wrote for a key.
func (s *Store) wroteKey(key []byte) { s.wrote(xxhash.Sum64(key)) }

// wroteAll marks a write to every key (FLUSHALL).
func (s *Store) wroteAll() {
	for i := range s.writeEpochs {
		s.writeEpochs[i].Add(1)
	}
}

// writeEpoch is the write epoch of the key with hash h, recorded by a GET when it is sent.
func (s *Store) writeEpoch(h uint64) uint64 { return s.writeEpochs[h%writeShards].Load() }

// flightID names the shared fetch of key for the singleflight group: kind ("" or "pttl"), the
// key and its write epoch, so that a GET after a write never joins one from before it.
func (s *Store) flightID(kind string, key []byte) string {
	var e [8]byte
	binary.LittleEndian.PutUint64(e[:], s.writeEpoch(xxhash.Sum64(key)))
	return kind + "\x00" + string(e[:]) + string(key)
}

// writes reports whether op may change its key.
func writes(op *store.Op) bool {
	switch op.Kind {
	case store.Get, store.Inspect, store.Touch:
		return false
	case store.GetEx:
		return op.TTL != store.TTLKeep
	}
	return true
}

// sharedCall is the call of a GET that joined another caller's: its result is Shared.
type sharedCall struct{ store.Call }

// Wait implements store.Call.
func (c sharedCall) Wait() (store.Result, error) {
	res, err := c.Call.Wait()
	res.Shared = true
	return res, err
}

// sharedNotifyingCall is sharedCall for a call that notifies (the loops' pipes).
type sharedNotifyingCall struct{ store.NotifyingCall }

// Wait implements store.Call.
func (c sharedNotifyingCall) Wait() (store.Result, error) {
	res, err := c.NotifyingCall.Wait()
	res.Shared = true
	return res, err
}
