package commands

import (
	"errors"
	"fmt"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Error is an error whose text is the client-visible reply, Redis's prefix included
// ("ERR syntax error", "WRONGPASS …").
type Error string

func (e Error) Error() string { return string(e) }

// Errors with fixed texts, exactly as Redis 7 words them.
var (
	ErrSyntax       = Error("ERR syntax error")
	ErrNotInteger   = Error("ERR value is not an integer or out of range")
	ErrNotFloat     = Error("ERR value is not a valid float")
	ErrNoAuth       = Error("NOAUTH Authentication required.")
	ErrWrongPass    = Error("WRONGPASS invalid username-password pair or user is disabled.")
	ErrNoPassword   = Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	ErrDBIndex      = Error("ERR DB index is out of range")
	ErrInvalidCur   = Error("ERR invalid cursor")
	ErrOverflow     = Error("ERR increment or decrement would overflow")
	ErrDecrOverflow = Error("ERR decrement would overflow")
	ErrNaN          = Error("ERR increment would produce NaN or Infinity")
	ErrTooLarge     = Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	ErrOOM          = Error("OOM command not allowed when used memory > 'maxmemory'.")
	ErrNoProto      = Error("NOPROTO unsupported protocol version")
	ErrClientName   = Error("ERR Client names cannot contain spaces, newlines or special characters.")
	ErrTimeout      = Error("ERR timeout waiting for the cache backend")
	ErrNXExpire     = Error("ERR NX and XX, GT or LT options at the same time are not compatible")
	ErrGTLT         = Error("ERR GT and LT options at the same time are not compatible")
)

// wrongArity is the reply to a bad argument count.
func wrongArity(name string) error {
	return Error("ERR wrong number of arguments for '" + name + "' command")
}

// invalidExpire is the reply to an expire time out of range.
func invalidExpire(name string) error {
	return Error("ERR invalid expire time in '" + name + "' command")
}

// unknownCommand formats Redis's reply to an unknown command, quoting the first arguments.
func unknownCommand(args [][]byte) error {
	var quoted []byte
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		n := 128 - len(quoted)
		quoted = append(quoted, '\'')
		quoted = append(quoted, a[:min(len(a), n)]...)
		quoted = append(quoted, '\'', ' ')
	}
	name := args[0]
	if len(name) > 128 {
		name = name[:128]
	}
	return Error(fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", name, quoted))
}

// unknownSubcommand formats Redis's reply to a bad subcommand of a container command.
func unknownSubcommand(parent string, sub []byte) error {
	if len(sub) > 128 {
		sub = sub[:128]
	}
	return Error(fmt.Sprintf("ERR unknown subcommand '%s'. Try %s HELP.", sub, upper(parent)))
}

// errorReply maps any error to the reply the client sees. Store and command sentinels get Redis's
// exact texts; anything else is an internal failure and is reported as "ERR <text>".
func errorReply(err error) resp.Reply {
	var e Error
	var se store.ServerError
	switch {
	case errors.As(err, &e):
		return resp.Error(string(e))
	case errors.As(err, &se):
		return resp.Error(string(se))
	case errors.Is(err, store.ErrNotInteger):
		return resp.Error(string(ErrNotInteger))
	case errors.Is(err, store.ErrOverflow):
		return resp.Error(string(ErrOverflow))
	case errors.Is(err, store.ErrNotFloat):
		return resp.Error(string(ErrNotFloat))
	case errors.Is(err, store.ErrNaN):
		return resp.Error(string(ErrNaN))
	case errors.Is(err, store.ErrTooLarge):
		return resp.Error(string(ErrTooLarge))
	case errors.Is(err, store.ErrOOM):
		return resp.Error(string(ErrOOM))
	}
	return resp.Error("ERR " + err.Error())
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
