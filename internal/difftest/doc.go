// Package difftest is Vela's differential test: seeded random command sequences sent to a real
// redis-server and to Vela, with the replies compared byte for byte.
//
// # What is compared
//
// Every reply is compared exactly (raw RESP bytes) unless its command's result depends on things
// that legitimately differ between two servers. Those exceptions, each with its reason, are the
// Check kinds in run.go:
//
//   - TTL, PTTL, EXPIRETIME, PEXPIRETIME: within a tolerance, because the two servers run each
//     command a few milliseconds apart.
//   - KEYS: compared as a sorted list (Redis returns its hash-table order).
//   - SCAN: a whole iteration is run on each server and the key sets are compared; cursor values
//     are opaque and differ by design (Vela's cursor is a slot number).
//   - CONFIG GET with several parameters: compared as unordered pairs (Redis returns dict order).
//   - HELLO: compared with the "id" field ignored (connection ids differ).
//   - DUMP: the two payloads must restore to the same value (Redis compresses a long value with
//     LZF, Vela never does), and RESTORE's valid IDLETIME and FREQ are not generated (Vela
//     checks but does not apply them).
//   - CLIENT ID, CLIENT LIST (of real clients), TIME, INFO, COMMAND, COMMAND COUNT/INFO/DOCS of
//     existing commands: shape only (type of reply). Their content is server-specific: ids,
//     addresses, clocks, Redis's 240 commands, memory figures. TestCommandInfoDifferential
//     compares COMMAND INFO and DOCS exactly for every command of the contract.
//   - RANDOMKEY: shape only (a key or a null; which key is random on both).
//   - CLIENT SETINFO is not generated: it does not exist in Redis 7.0.15 (it came in 7.2), while
//     Vela serves it because go-redis sends it.
//   - CLIENT HELP, CONFIG HELP, COMMAND HELP are not generated: Redis's help lists subcommands
//     Vela deliberately does not have.
//   - CLIENT LIST TYPE normal lists this very connection: shape only. CLIENT LIST of other types
//     and of unknown ids is empty on both and compared exactly.
//   - DBSIZE is always preceded by EXISTS over the whole key space: Redis counts keys that have
//     expired but not yet been reclaimed, and its reclaiming runs on its own clock; touching every
//     key first makes both counts deterministic.
//   - SCAN TYPE none is not generated: Redis 7.0 reports a key that has expired but is not yet
//     reclaimed as type "none", so its answer depends on Redis's expiry clock.
//   - Command and subcommand names never contain a NUL byte (arguments and options do): Redis
//     finds a command in a hash table whose bucket comes from the whole name but whose key
//     comparison (strcasecmp) stops at the NUL, so whether "get\x00x" runs GET depends on the
//     random hash seed of that Redis process. Vela treats such a name as unknown.
//
// # Time
//
// Relative expiries are either in the past or at least 1000 seconds away, and absolute ones at
// least 1000 seconds from now in either direction, so no key expires while a sequence runs and
// the outcome never depends on which server ran a command a millisecond later.
//
// # Inline commands
//
// Inline (telnet-style) requests are generated too, but never contain a NUL byte: Redis looks
// for the end of an inline line with strchr, which stops at NUL, so such a request makes Redis
// wait for more input while Vela answers it.
package difftest
