// Package fetchlock is Vela's stampede protection: the fetch leases behind FETCHLOCK, FETCHFILL
// and FETCHRELEASE (DESIGN.md §3).
//
// # Leases
//
// A caller that finds a key missing gets the key's lease (LOCKED and a token) when nobody holds
// it, and otherwise waits. A lease ends when its holder fills the key (FETCHFILL), gives it up
// (FETCHRELEASE), runs out of time (LEASE) or closes its connection; the last three hand it to
// exactly one waiter, the longest waiting. Any write to the key ends the lease too and wakes every
// waiter, who then reads the key (HIT). A caller that finds the key live but within its REFRESH
// window of expiry gets the lease with the value (REFRESH) when nobody holds it; everyone else
// keeps getting HIT.
//
// # Fencing
//
// A fill writes only while its lease is current: any change reported for the key (a write,
// delete, tag invalidation or flush, through KeyChanged/AllChanged) ends the lease, so a slow
// holder's fill is refused (STALE) and newer data stays. A fill under a lease granted on a missing
// key is also conditional in the store (write only if still absent), which closes the window
// between a concurrent write's store update and its notification. A fill under a refresh lease
// (granted on a live key) is a compare-and-set in the store (store.CondSame): it writes only if
// the key still holds the value the holder was handed, or has expired meanwhile. What remains
// undetectable in that window is a write of the very same value, which changes nothing a reader
// can see but its expiry.
//
// # Concurrency
//
// State is kept per key in 256 independently locked shards; a key without a lease, waiter or
// caller in flight has no state at all, and the hit path of Lock takes no lock. Waiters block on
// their own channel (no polling). Change notifications for keys with no state cost one hash and
// one atomic load.
//
// # Seam
//
// The commands (commands.go) use only the small Leases interface, so a partitioned cluster can
// keep a key's leases on its owner (by forwarding the commands) and the Redis store can keep them
// in Redis, without changing the commands. Manager is the in-process implementation.
package fetchlock
