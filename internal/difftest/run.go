package difftest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/rdb"
)

// Tolerances for replies that depend on when each server ran the command. The servers run each
// command within milliseconds of each other; the margins leave room for a loaded CI machine
// (-race, two cores) without hiding a real error, which is off by at least a second's rounding
// or by the whole TTL.
const (
	ttlTolSeconds = 2
	ttlTolMillis  = 2000
)

// Options configure Run.
type Options struct {
	// RedisAddr and VelaAddr are the two servers, configured alike (databases 1, the same
	// proto-max-bulk-len and requirepass).
	RedisAddr, VelaAddr string
	// Seed selects the sequence.
	Seed int64
	// Steps is how many generated steps to run (a step is usually one command).
	Steps int
	// RESP3 starts each connection with HELLO 3.
	RESP3 bool
	// Gen configures the generator.
	Gen GenOptions
	// MaxMismatches stops the run after this many mismatches (default 5): after the first one
	// the two key spaces may differ and later mismatches are often consequences.
	MaxMismatches int
}

// Mismatch is one step whose replies differ.
type Mismatch struct {
	Index        int
	Step         Step
	Redis, Vela  string
	History      []string // the steps before it, oldest first
	Disconnected bool     // a connection failed; the run stopped
}

// String renders the mismatch with both replies and the steps before it.
func (m Mismatch) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d: %s\n  redis: %s\n  vela:  %s", m.Index, m.Step, m.Redis, m.Vela)
	if len(m.History) > 0 {
		b.WriteString("\n  after:")
		for _, h := range m.History {
			b.WriteString("\n    " + h)
		}
	}
	return b.String()
}

// Result summarises a run.
type Result struct {
	Commands   int // requests sent to each server (SCAN iterations count once per call)
	Mismatches []Mismatch
	// Replies counts Redis's replies by command ("set", "client|list") and outcome ("ok" or
	// "error"), so a test can check that the sequence exercised both paths of every command.
	Replies map[string]map[string]int
}

// count records the outcome of Redis's reply to args.
func (r *Result) count(args [][]byte, v respclient.Value) {
	if len(args) == 0 {
		return
	}
	name := strings.ToLower(cstr(args[0]))
	switch name {
	case "client", "command", "config":
		if len(args) > 1 {
			name += "|" + strings.ToLower(string(args[1]))
		}
	}
	outcome := "ok"
	if v.IsError() {
		outcome = "error"
	}
	if r.Replies == nil {
		r.Replies = map[string]map[string]int{}
	}
	if r.Replies[name] == nil {
		r.Replies[name] = map[string]int{}
	}
	r.Replies[name][outcome]++
}

// side is one server's connection.
type side struct {
	name, addr string
	c          *respclient.Conn
	proto      int
}

func (s *side) dial(resp3 bool) error {
	if s.c != nil {
		_ = s.c.Close()
	}
	c, err := respclient.DialErr(s.addr)
	if err != nil {
		return err
	}
	c.SetTimeout(5 * time.Second)
	s.c, s.proto = c, 2
	if resp3 {
		v, _, err := c.Exec([][]byte{[]byte("HELLO"), []byte("3")})
		if err != nil {
			return err
		}
		s.noteHello(v)
	}
	return nil
}

// noteHello records the protocol a successful HELLO reply reports.
func (s *side) noteHello(v respclient.Value) {
	if v.IsError() {
		return
	}
	if p, ok := v.Map()["proto"]; ok && p.Type == ':' {
		s.proto = int(p.Int)
	}
}

type reply struct {
	v   respclient.Value
	raw []byte
}

// Run sends the sequence for opts.Seed to both servers and compares every reply. It returns an
// error only when it cannot talk to a server at all.
func Run(opts Options) (Result, error) {
	if opts.MaxMismatches <= 0 {
		opts.MaxMismatches = 5
	}
	var res Result
	sides := []*side{{name: "redis", addr: opts.RedisAddr}, {name: "vela", addr: opts.VelaAddr}}
	for _, s := range sides {
		if err := s.dial(opts.RESP3); err != nil {
			return res, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	defer func() {
		for _, s := range sides {
			_ = s.c.Close()
		}
	}()
	g := NewGen(opts.Seed, opts.Gen)
	historyLen := 8
	if os.Getenv("DIFFTEST_HISTORY") != "" {
		historyLen, _ = strconv.Atoi(os.Getenv("DIFFTEST_HISTORY"))
	}
	var history []string
	index := 0
	for index < opts.Steps && len(res.Mismatches) < opts.MaxMismatches {
		for _, st := range g.Next() {
			index++
			m, n := runStep(sides, st, opts.RESP3, &res)
			res.Commands += n
			if m != nil {
				m.Index, m.Step = index, st
				m.History = append([]string(nil), history...)
				res.Mismatches = append(res.Mismatches, *m)
				if m.Disconnected {
					return res, nil
				}
			}
			history = append(history, st.String())
			if len(history) > historyLen {
				history = history[1:]
			}
		}
	}
	return res, nil
}

// runStep runs one step on both sides and compares. It returns the mismatch, if any, and the
// number of requests sent to each side.
func runStep(sides []*side, st Step, resp3 bool, res *Result) (*Mismatch, int) {
	if st.Check == ScanAll {
		return scanStep(sides, st, res)
	}
	var readErr []string
	readErrs := make([]error, len(sides))
	for i, s := range sides {
		if st.Raw != nil {
			s.c.SendRaw(st.Raw)
		} else {
			s.c.SendArgs(st.Args)
		}
		if err := s.c.Flush(); err != nil {
			if !isReset(err) {
				return Mismatch{Disconnected: true}.withErr(s.name, err), 1
			}
			// The server closed on a protocol error before reading the whole request: judged
			// below with the other side's reply, like a reset while reading.
			readErrs[i] = err
			readErr = append(readErr, fmt.Sprintf("%s: %v (while sending)", s.name, err))
		}
	}
	n := max(st.Replies, 1)
	replies := make([][]reply, len(sides))
	for i, s := range sides {
		for j := 0; j < n && readErrs[i] == nil; j++ {
			v, raw, err := s.c.Receive()
			if err != nil {
				readErrs[i] = err
				readErr = append(readErr, fmt.Sprintf("%s: %v (after %q)", s.name, err, raw))
				break
			}
			replies[i] = append(replies[i], reply{v, raw})
		}
	}
	if readErr != nil && protocolClose(replies, readErrs) {
		// A server that closes on a protocol error while request bytes are still unread makes
		// the kernel send a reset, which can overtake the error reply: a race in Redis as much
		// as in Vela. Both sides closed the connection, which is what this step checks.
		for _, s := range sides {
			if err := s.dial(resp3); err != nil {
				return Mismatch{Disconnected: true}.withErr(s.name, err), 1
			}
		}
		return nil, 1
	}
	if readErr != nil {
		return &Mismatch{Redis: describeAll(replies[0]), Vela: describeAll(replies[1]) + " / " + strings.Join(readErr, "; "),
			Disconnected: true}, 1
	}
	if st.Raw == nil {
		res.count(st.Args, replies[0][0].v)
	}
	var mismatch *Mismatch
	for j := 0; j < n; j++ {
		r, v := replies[0][j], replies[1][j]
		if !equal(st.Check, r, v) {
			mismatch = &Mismatch{Redis: describe(r), Vela: describe(v)}
			break
		}
	}
	closes := st.Closes
	for i, s := range sides {
		last := replies[i][n-1].v
		if isHello(st) {
			s.noteHello(last)
		}
		if last.IsError() && strings.HasPrefix(last.Str, "ERR Protocol error") {
			closes = true
		}
	}
	if closes {
		for _, s := range sides {
			if !closed(s.c) && mismatch == nil {
				mismatch = &Mismatch{Redis: "closed", Vela: "closed"}
				if s.name == "redis" {
					mismatch.Redis = "connection left open"
				} else {
					mismatch.Vela = "connection left open"
				}
			}
			if err := s.dial(resp3); err != nil {
				return Mismatch{Disconnected: true}.withErr(s.name, err), 1
			}
		}
	}
	return mismatch, 1
}

func (m Mismatch) withErr(name string, err error) *Mismatch {
	if name == "redis" {
		m.Redis = "error: " + err.Error()
	} else {
		m.Vela = "error: " + err.Error()
	}
	return &m
}

func isHello(st Step) bool {
	return len(st.Args) > 0 && strings.EqualFold(cstr(st.Args[0]), "hello")
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// protocolClose reports whether every side either answered its last request with a protocol
// error or had its connection reset while reading it.
func protocolClose(replies [][]reply, errs []error) bool {
	for i := range replies {
		switch {
		case errs[i] != nil:
			if !isReset(errs[i]) {
				return false
			}
		case len(replies[i]) == 0:
			return false
		default:
			last := replies[i][len(replies[i])-1].v
			if !last.IsError() || !strings.HasPrefix(last.Str, "ERR Protocol error") {
				return false
			}
		}
	}
	return true
}

// isReset reports whether err is the peer resetting or having closed the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe")
}

// closed reports whether the server has closed c (it reads nothing more and sees EOF).
func closed(c *respclient.Conn) bool {
	nc := c.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var buf [1]byte
	_, err := nc.Read(buf[:])
	return err != nil && (errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset"))
}

func describe(r reply) string { return fmt.Sprintf("%s   raw %q", r.v, truncate(r.raw)) }

func describeAll(rs []reply) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = describe(r)
	}
	return strings.Join(parts, " | ")
}

func truncate(b []byte) []byte {
	if len(b) > 300 {
		return append(b[:300:300], "…"...)
	}
	return b
}

// equal compares two replies under check.
func equal(check Check, r, v reply) bool {
	if bytes.Equal(r.raw, v.raw) {
		return true
	}
	if r.v.IsError() || v.v.IsError() || r.v.Type != v.v.Type {
		return false
	}
	switch check {
	case TTLSeconds, TTLMillis:
		tol := int64(ttlTolSeconds)
		if check == TTLMillis {
			tol = ttlTolMillis
		}
		if r.v.Type != ':' || r.v.Int < 0 || v.v.Int < 0 {
			return false // -1 and -2 are exact
		}
		d := r.v.Int - v.v.Int
		return d >= -tol && d <= tol
	case Sorted:
		return canonSorted(r.v) == canonSorted(v.v)
	case UnorderedPairs:
		return canonPairs(r.v) == canonPairs(v.v)
	case Shape:
		return r.v.Null == v.v.Null
	case Hello:
		return canonHello(r.v) == canonHello(v.v)
	case DumpPayload:
		rv, rerr := rdb.Restore([]byte(r.v.Str), 1<<30)
		vv, verr := rdb.Restore([]byte(v.v.Str), 1<<30)
		return r.v.Type == '$' && rerr == nil && verr == nil && bytes.Equal(rv, vv)
	}
	return false
}

func canonSorted(v respclient.Value) string {
	items := make([]string, len(v.Elems))
	for i, e := range v.Elems {
		items[i] = e.String()
	}
	sort.Strings(items)
	return strings.Join(items, "\x00")
}

func canonPairs(v respclient.Value) string {
	var items []string
	for i := 0; i+1 < len(v.Elems); i += 2 {
		items = append(items, v.Elems[i].String()+"="+v.Elems[i+1].String())
	}
	sort.Strings(items)
	return strings.Join(items, "\x00")
}

func canonHello(v respclient.Value) string {
	elems := append([]respclient.Value(nil), v.Elems...)
	for i := 0; i+1 < len(elems); i += 2 {
		if elems[i].Text() == "id" && elems[i+1].Type == ':' {
			elems[i+1].Int = 0
		}
	}
	v.Elems = elems
	return v.String()
}

// scanStep runs a whole SCAN iteration on each side with the step's options and compares the
// sets of keys returned. An error reply to the first call is compared exactly.
func scanStep(sides []*side, st Step, res *Result) (*Mismatch, int) {
	results := make([]string, len(sides))
	calls := 0
	for i, s := range sides {
		keys := map[string]bool{}
		a := append([][]byte(nil), st.Args...)
		for iter := 0; ; iter++ {
			v, raw, err := s.c.Exec(a)
			calls++
			if err != nil {
				return Mismatch{Disconnected: true}.withErr(s.name, err), calls
			}
			if i == 0 && iter == 0 {
				res.count(a, v)
			}
			if v.IsError() || v.Type != '*' || len(v.Elems) != 2 || v.Elems[1].Type != '*' {
				results[i] = describe(reply{v, raw})
				break
			}
			for _, k := range v.Elems[1].Elems {
				keys[k.Str] = true
			}
			cursor := v.Elems[0].Str
			if cursor == "0" {
				list := make([]string, 0, len(keys))
				for k := range keys {
					list = append(list, fmt.Sprintf("%q", k))
				}
				sort.Strings(list)
				results[i] = "keys " + strings.Join(list, " ")
				break
			}
			if iter > 100000 {
				results[i] = "SCAN did not finish"
				break
			}
			a[1] = []byte(cursor)
		}
	}
	if results[0] != results[1] {
		return &Mismatch{Redis: results[0], Vela: results[1]}, calls / 2
	}
	return nil, calls / 2
}
