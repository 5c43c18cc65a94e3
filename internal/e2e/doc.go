// Package e2e holds Vela's end-to-end tests: real clients (go-redis over RESP2 and RESP3,
// redis-cli as a subprocess), the TTL sweep at scale, protocol and resource limits, and the
// built binary's start-up and shutdown. Each runs a real server on loopback; where a case is
// about Redis compatibility it runs against a real redis-server too, so the expectations are
// Redis's own.
package e2e
