package commands

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/resp"
)

// MONITOR, as Redis 7.0 serves it: the client gets +OK, then one status line for every command
// the node runs, from any client, itself included:
//
//	+1700000000.123456 [0 127.0.0.1:50412] "SET" "k" "v"
//
// Each command is shown once it has run, as Redis's call() feeds its monitors, so EXEC comes
// after the commands it ran; scripts (EVAL and its kin) are shown before they run, each
// command they call after them as "[0 lua]". A command refused before it ran (unknown, wrong
// arity, not authenticated) is not shown, nor are administrative ones (Redis's admin flag:
// CONFIG, CLIENT LIST, SLOWLOG…), nor the peer commands of a cluster (VELA PEER, RESTORE…).
// AUTH's arguments and HELLO's AUTH pair read "(redacted)". An argument longer than 1 MiB is
// shown cut, followed by how many bytes were left out (Redis shows it whole).
//
// A monitor is a replica in Redis's eyes: it may not run a command that reads or writes keys
// (or PUBLISH, or a script), and gets "Replica can't interact with the keyspace". MONITOR inside
// MULTI fails at EXEC, a second MONITOR answers nothing, and RESET ends monitoring.
//
// While nobody monitors, a command pays two atomic loads for it (monitorRefuses, monitored).

// Monitor errors, with Redis's texts.
const (
	errMonitorKeyspace = Error("ERR Replica can't interact with the keyspace")
	errMonitorInExec   = Error("ERR MONITOR isn't allowed for DENY BLOCKING client")
)

// monitors are the connections in MONITOR mode on a node. list is replaced, never changed in
// place, so that a command reads it without a lock.
type monitors struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*resp.Conn] // nil when empty
}

// add puts conn among the monitors; it reports false when it is there already.
func (m *monitors) add(conn *resp.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	var old []*resp.Conn
	if p := m.list.Load(); p != nil {
		old = *p
	}
	for _, c := range old {
		if c == conn {
			return false
		}
	}
	next := append(append(make([]*resp.Conn, 0, len(old)+1), old...), conn)
	m.list.Store(&next)
	return true
}

// remove takes conn out of the monitors, if it is there.
func (m *monitors) remove(conn *resp.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.list.Load()
	if p == nil {
		return
	}
	next := make([]*resp.Conn, 0, len(*p))
	for _, c := range *p {
		if c != conn {
			next = append(next, c)
		}
	}
	if len(next) == 0 {
		m.list.Store(nil)
	} else {
		m.list.Store(&next)
	}
}

// has reports whether conn is a monitor.
func (m *monitors) has(conn *resp.Conn) bool {
	if p := m.list.Load(); p != nil {
		for _, c := range *p {
			if c == conn {
				return true
			}
		}
	}
	return false
}

func (n *Node) registerMonitor() {
	n.table.Register(&Command{Name: "monitor", Arity: 1, Flags: FlagAdmin | FlagLoading, Group: "server", Handler: n.monitor})
}

// monitor serves MONITOR.
func (n *Node) monitor(c *Ctx, _ [][]byte) (resp.Reply, error) {
	switch {
	case c.inExec:
		return resp.Reply{}, errMonitorInExec
	case c.Conn == nil || c.Peer:
		return resp.OK, nil // nowhere to send the commands to
	}
	if !n.monitors.add(c.Conn) {
		return resp.Reply{Kind: resp.KindNone}, nil // as Redis: a monitor's MONITOR is ignored
	}
	conn := c.Conn
	conn.SetMonitor(true)
	conn.OnClose(func() { n.monitors.remove(conn) })
	return resp.OK, nil
}

// stopMonitor ends c's MONITOR mode (RESET).
func (n *Node) stopMonitor(c *Ctx) {
	if c.Conn != nil && n.monitors.has(c.Conn) {
		n.monitors.remove(c.Conn)
		c.Conn.SetMonitor(false)
	}
}

// monitorRefuses reports whether a monitor may not run cmd: Redis treats a monitor as a
// replica, which may not touch the keyspace (its write, read-only and may-replicate commands:
// PUBLISH, SPUBLISH and scripts among them).
func (n *Node) monitorRefuses(c *Ctx, cmd *Command) bool {
	if c.Conn == nil || n.monitors.list.Load() == nil || !n.monitors.has(c.Conn) {
		return false
	}
	return cmd.Flags&(FlagWrite|FlagReadOnly|flagScript) != 0 || cmd.Name == "publish" || cmd.Name == "spublish"
}

// monitored shows the command c runs to the monitors, if there are any and MONITOR shows it.
func (n *Node) monitored(c *Ctx, cmd *Command, args [][]byte) {
	p := n.monitors.list.Load()
	if p == nil || monitorHides(c, cmd) {
		return
	}
	line := monitorLine(c, args, time.Now())
	for _, conn := range *p {
		conn.PushFrom(c.loop, line)
	}
}

// monitorHides reports whether MONITOR leaves cmd out: a command Redis flags admin (Vela's
// FlagAdmin for its own), and the VELA subcommands a cluster's members send each other.
func monitorHides(c *Ctx, cmd *Command) bool {
	if strings.HasPrefix(cmd.Name, "vela|") && (c.Peer || cmd.Name == "vela|peer") {
		return true
	}
	if d, ok := redisDocs()[cmd.Name]; ok {
		for _, f := range d.info[0].Elems {
			if f.Str == "admin" {
				return true
			}
		}
		return false
	}
	return cmd.Flags&FlagAdmin != 0
}

// monitorLine formats one line of MONITOR's output, as Redis's replicationFeedMonitors does:
// the time, the client ("lua" for a script's command) and each argument quoted as sdscatrepr
// quotes it.
func monitorLine(c *Ctx, args [][]byte, t time.Time) []byte {
	b := make([]byte, 0, 64+16*len(args))
	b = append(b, '+')
	b = strconv.AppendInt(b, t.Unix(), 10)
	b = append(b, '.')
	us := t.Nanosecond() / 1000
	for d := 100000; d > 1; d /= 10 { // six digits, zero-padded
		if us < d {
			b = append(b, '0')
		}
	}
	b = strconv.AppendInt(b, int64(us), 10)
	b = append(b, " [0 "...)
	switch {
	case c.inScript:
		b = append(b, "lua"...)
	case c.Conn != nil:
		b = append(b, c.Conn.RemoteAddr()...)
	default:
		b = append(b, "?"...)
	}
	b = append(b, ']')
	redact := redactedArgs(args)
	for i, a := range args {
		b = append(b, ' ')
		if i < len(redact) && redact[i] {
			b = append(b, `"(redacted)"`...)
			continue
		}
		if len(a) > monitorArgMax { // shown cut, so that a monitor never costs 4 × a huge value
			b = appendRepr(b, a[:monitorArgMax])
			b = append(b, "..."...)
			b = strconv.AppendInt(b, int64(len(a)-monitorArgMax), 10)
			b = append(b, " more bytes"...)
			continue
		}
		b = appendRepr(b, a)
	}
	return append(b, '\r', '\n')
}

// monitorArgMax is the longest argument MONITOR shows whole. Redis shows every byte; quoted, a
// byte takes up to four, and a 512 MB value would cost 2 GB per command to show.
const monitorArgMax = 1 << 20

// redactedArgs marks the arguments MONITOR must not show, as Redis redacts them: every
// argument of AUTH, and the user name and password of HELLO's AUTH option. nil when none.
func redactedArgs(args [][]byte) []bool {
	switch {
	case equalFold(args[0], "auth"):
		r := make([]bool, len(args))
		for i := 1; i < len(args); i++ {
			r[i] = true
		}
		return r
	case equalFold(args[0], "hello"):
		var r []bool
		for i := 2; i < len(args); i++ { // as Redis's HELLO reads its options
			more := len(args) - 1 - i
			switch {
			case equalFold(args[i], "auth") && more >= 2:
				if r == nil {
					r = make([]bool, len(args))
				}
				r[i+1], r[i+2] = true, true
				i += 2
			case equalFold(args[i], "setname") && more >= 1:
				i++
			default:
				return r
			}
		}
		return r
	}
	return nil
}

// appendRepr appends s quoted as Redis's sdscatrepr quotes it: backslash escapes for the
// quote, the backslash and \n \r \t \a \b, printable ASCII as it is, every other byte as \xhh.
func appendRepr(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, ch := range s {
		switch ch {
		case '\\', '"':
			b = append(b, '\\', ch)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if ch >= 0x20 && ch <= 0x7e {
				b = append(b, ch)
			} else {
				b = append(b, '\\', 'x', hex[ch>>4], hex[ch&0xf])
			}
		}
	}
	return append(b, '"')
}
