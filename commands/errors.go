package commands

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Error is an error whose text is the client-visible reply, Redis's prefix included
// ("ERR syntax error", "WRONGPASS …").
type Error string

// Error implements error: the reply's text.
func (e Error) Error() string { return string(e) }

// Errors with fixed texts, exactly as Redis 7 words them.
var (
	ErrSyntax     = Error("ERR syntax error")
	ErrNotInteger = Error("ERR value is not an integer or out of range")
	ErrIntRange   = Error("ERR value is out of range, value must between -2147483648 and 2147483647")
	ErrNotFloat   = Error("ERR value is not a valid float")
	ErrNoAuth     = Error("NOAUTH Authentication required.")
	ErrWrongPass  = Error("WRONGPASS invalid username-password pair or user is disabled.")
	ErrNoPassword = Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	ErrDBIndex    = Error("ERR DB index is out of range")
	// ErrClusterDown is Redis Cluster's reply to a command on keys while the cluster is down: a
	// cluster topology gives it while the node has seeds and has joined none of them yet.
	ErrClusterDown  = Error("CLUSTERDOWN The cluster is down")
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
	ErrWrongType    = Error("WRONGTYPE Operation against a key holding the wrong kind of value")
	errOffsetRange  = Error("ERR offset is out of range")
)

// WrongArity is the reply to a bad argument count for the command called name.
func WrongArity(name string) Error {
	return Error("ERR wrong number of arguments for '" + name + "' command")
}

// invalidExpire is the reply to an expire time out of range.
func invalidExpire(name string) error {
	return Error("ERR invalid expire time in '" + name + "' command")
}

// cstr returns b up to its first NUL byte. Redis formats arguments into messages with %s and
// compares option names with strcasecmp, both of which read an argument as a C string.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// oneLine replaces CR and LF with spaces, as Redis does to every error it formats from client
// input, so that the reply stays one protocol line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}

// formatError builds an error the way Redis's addReplyErrorFormat does: CR and LF are trimmed
// from both ends of the message and replaced by spaces inside it. Arguments that come from the
// client should be passed through cstr first, as Redis prints them with %s.
func formatError(format string, a ...any) Error {
	msg := strings.Trim(fmt.Sprintf(format, a...), "\r\n")
	return Error("ERR " + oneLine(msg))
}

// unknownCommand formats Redis's reply to an unknown command, quoting the first arguments:
// each argument is printed as a C string, and printing stops once 128 bytes of them are shown.
func unknownCommand(args [][]byte) error {
	var quoted []byte
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		a = cstr(a)
		a = a[:min(len(a), 128-len(quoted))]
		quoted = append(quoted, '\'')
		quoted = append(quoted, a...)
		quoted = append(quoted, '\'', ' ')
	}
	name := cstr(args[0])
	name = name[:min(len(name), 128)]
	return Error(oneLine("ERR unknown command '" + string(name) + "', with args beginning with: " + string(quoted)))
}

// unknownSubcommand formats Redis's reply to a bad subcommand of a container command.
func unknownSubcommand(parent string, sub []byte) error {
	sub = cstr(sub)
	sub = sub[:min(len(sub), 128)]
	return Error(oneLine("ERR unknown subcommand '" + string(sub) + "'. Try " + upper(parent) + " HELP."))
}

// subcommandSyntaxError is Redis's reply to a known subcommand given arguments its handler
// does not take (addReplySubcommandSyntaxError).
func subcommandSyntaxError(parent string, sub []byte) error {
	sub = cstr(sub)
	sub = sub[:min(len(sub), 128)]
	return Error(oneLine("ERR unknown subcommand or wrong number of arguments for '" + string(sub) +
		"'. Try " + upper(parent) + " HELP."))
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
	case errors.Is(err, store.ErrWrongType):
		return resp.Error(string(ErrWrongType))
	}
	return resp.Error(oneLine("ERR " + err.Error()))
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
