package difftest

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"time"

	"github.com/vela-cache/vela/rdb"
)

// Check says how the two servers' replies to a Step are compared.
type Check uint8

// Checks. Exact is the rule; every other kind is an exception documented in doc.go.
const (
	Exact          Check = iota // raw bytes equal
	TTLSeconds                  // integers within ttlTolSeconds (TTL, EXPIRETIME)
	TTLMillis                   // integers within ttlTolMillis (PTTL, PEXPIRETIME)
	Sorted                      // arrays equal once sorted (KEYS)
	UnorderedPairs              // maps (or RESP2 flat pairs) equal as sets of pairs (CONFIG GET)
	Shape                       // same reply type; errors must still be equal
	Hello                       // HELLO's map with the connection id ignored
	ScanAll                     // run a whole SCAN iteration on each side, compare the key sets
	DumpPayload                 // DUMP: payloads that RESTORE to the same value (Redis may compress, Vela does not)
)

// Step is one request and how its replies are compared.
type Step struct {
	// Args is a multibulk request; nil when Raw is set.
	Args [][]byte
	// Raw is sent as is (inline commands, malformed input); it produces Replies replies.
	Raw     []byte
	Replies int
	Check   Check
	// Closes says the server closes the connection after replying (QUIT, protocol errors).
	Closes bool
}

// String renders the request for failure messages, quoting binary bytes.
func (s Step) String() string {
	if s.Raw != nil {
		return "raw " + strconv.Quote(string(s.Raw))
	}
	parts := make([]string, len(s.Args))
	for i, a := range s.Args {
		q := string(a)
		if len(q) > 80 {
			q = q[:80] + fmt.Sprintf("…(%d bytes)", len(a))
		}
		parts[i] = strconv.Quote(q)
	}
	return strings.Join(parts, " ")
}

// GenOptions configure a generator.
type GenOptions struct {
	// Password is the servers' requirepass; "" when they have none.
	Password string
	// MaxBulkLen is both servers' proto-max-bulk-len, used to generate APPENDs that overflow it
	// and bulk lengths that exceed it. 0 disables those steps.
	MaxBulkLen int
	// NoTransactions leaves out MULTI, EXEC, DISCARD, WATCH and UNWATCH (for a Vela that
	// refuses them: a partitioned cluster).
	NoTransactions bool
	// NoFlushInMulti leaves FLUSHALL and FLUSHDB out of transactions (the redis store refuses
	// them there: its transactions run in Redis, and its FLUSHALL also drops its bookkeeping).
	NoFlushInMulti bool
	// OneKeyMSETNX makes every MSETNX name a single key (repeated), for a Vela that refuses
	// MSETNX over keys of several owners (a replicated cluster, as Redis Cluster does).
	OneKeyMSETNX bool
	// KeyPrefix goes before every key of the key space: a Redis Cluster hash tag ("{t}") keeps
	// every key on one member of a partitioned cluster, which can then run its transactions.
	// Inline commands, whose keys are literal, are then kept out of transactions.
	KeyPrefix string
	// NoClusterWideInMulti leaves the commands that act on every member of a cluster (KEYS,
	// SCAN, DBSIZE, FLUSHALL, FLUSHDB) out of transactions (a partitioned cluster refuses them
	// there).
	NoClusterWideInMulti bool
	// NoKeyPairs leaves out the commands on two keys that must live together (RENAME,
	// RENAMENX, COPY, LCS), for a cluster whose keys live on several members: Vela answers
	// CROSSSLOT to those over two owners, as Redis Cluster does (the transaction tests, whose
	// keys share one hash tag, send them).
	NoKeyPairs bool
	// NoIdleTime leaves out OBJECT IDLETIME on a key (for a store that keeps no access times:
	// the disk store).
	NoIdleTime bool
	// CopiesCounted: Vela's writes are copied to other members before they are acknowledged
	// (the replicated topology, and the partitioned one with replicas > 1), so WAIT counts
	// copies a lone Redis has not; its replies are then compared by kind, its errors still
	// exactly.
	CopiesCounted bool
}

// Gen produces a random command sequence from a seed. Relative and absolute expiry times are
// derived from the wall clock, so a seed reproduces the same commands with times shifted.
type Gen struct {
	r     *rand.Rand
	opts  GenOptions
	space [][]byte
	cmds  []weighted
	// inMulti: the sequence has sent MULTI and not yet EXEC or DISCARD. Only steps compared
	// exactly are queued then, since EXEC answers all their replies in one array.
	inMulti bool
}

type weighted struct {
	w  int
	fn func() []Step
}

// Keys is the key space every sequence draws from: small, so commands interact, and including
// the empty key, binary keys and keys with glob metacharacters.
var Keys = [][]byte{
	[]byte("a"), []byte("b"), []byte("key:1"), []byte("key:2"), []byte("key:10"), []byte("user{1}"),
	[]byte(""), []byte("k\x00z"), []byte("k\r\nz"), []byte("\xff\xfe"), []byte("[x]"), []byte("*"),
}

// NewGen returns a generator for seed.
func NewGen(seed int64, opts GenOptions) *Gen {
	g := &Gen{r: rand.New(rand.NewSource(seed)), opts: opts, space: Keys}
	if opts.KeyPrefix != "" {
		g.space = make([][]byte, len(Keys))
		for i, k := range Keys {
			g.space[i] = append([]byte(opts.KeyPrefix), k...)
		}
	}
	g.cmds = []weighted{
		// Strings.
		{60, g.get}, {80, g.set}, {10, g.setnx}, {15, g.setex}, {10, g.getset}, {10, g.getdel},
		{30, g.getex}, {20, g.mget}, {20, g.mset}, {40, g.incr}, {40, g.incrbyfloat},
		{25, g.append}, {10, g.strlen}, {15, g.getrange}, {15, g.setrange},
		// Bits.
		{10, g.getbit}, {15, g.setbit}, {10, g.bitcount}, {10, g.bitpos}, {20, g.bitfield},
		// Keys.
		{25, g.del}, {25, g.exists}, {10, g.typ}, {60, g.expire}, {40, g.ttl}, {10, g.persist},
		{10, g.dump}, {12, g.restore}, {4, g.databases}, {4, g.randomkey},
		{15, g.keys}, {15, g.scan}, {15, g.object},
		// Connection and server.
		{8, g.ping}, {5, g.echo}, {2, g.quit}, {2, g.reset}, {5, g.selectDB}, {6, g.auth}, {8, g.hello},
		{12, g.client}, {6, g.command}, {6, g.config}, {3, g.info}, {2, g.role}, {3, g.wait}, {2, g.time}, {5, g.getkeys}, {8, g.dbsize},
		{3, g.flush},
		// Pub/Sub, without subscribers: a subscription would put a RESP2 connection in the
		// Pub/Sub context (internal/e2e's TestPubSubLikeRedis plays those sessions).
		{6, g.pubsub},
		// Garbage and the wire.
		{12, g.unknown}, {12, g.inline}, {2, g.protocolError},
	}
	if !opts.NoKeyPairs {
		g.cmds = append(g.cmds, weighted{15, g.move}, weighted{10, g.lcs}, weighted{10, g.bitop})
	}
	if !opts.NoTransactions {
		g.cmds = append(g.cmds, weighted{6, g.multi}, weighted{5, g.watch}, weighted{2, g.unwatch},
			weighted{2, g.endTx})
	}
	return g
}

// Next returns the next steps (usually one).
func (g *Gen) Next() []Step {
	if g.inMulti && g.chance(0.15) {
		return g.track(g.endTx())
	}
	for {
		steps := g.next()
		if !g.inMulti || g.queueable(steps) {
			return g.track(steps)
		}
	}
}

// queueable reports whether steps may be sent between MULTI and EXEC: every reply is compared
// exactly, so the array EXEC answers can be too, and the options keep none of them out.
func (g *Gen) queueable(steps []Step) bool {
	for _, st := range steps {
		name := ""
		if len(st.Args) > 0 {
			name = strings.ToLower(string(st.Args[0]))
		}
		flush := name == "flushall" || name == "flushdb"
		switch {
		case st.Check != Exact,
			g.opts.NoFlushInMulti && flush,
			g.opts.NoClusterWideInMulti && (flush || name == "keys" || name == "scan" || name == "dbsize"),
			g.opts.KeyPrefix != "" && st.Raw != nil: // inline commands: their keys are literal
			return false
		}
	}
	return true
}

// track follows MULTI, EXEC and DISCARD through steps, and connections the server closes (a
// new connection is in no transaction).
func (g *Gen) track(steps []Step) []Step {
	for _, st := range steps {
		switch {
		case st.Closes:
			g.inMulti = false
		case len(st.Args) == 1 && strings.EqualFold(string(st.Args[0]), "multi"):
			g.inMulti = true
		case len(st.Args) >= 1 && strings.EqualFold(string(st.Args[0]), "exec"):
			g.inMulti = false // with the wrong arity too: EXECABORT discards the transaction
		case len(st.Args) == 1 && (strings.EqualFold(string(st.Args[0]), "discard") ||
			strings.EqualFold(string(st.Args[0]), "reset")):
			g.inMulti = false
		}
	}
	return steps
}

// next draws one command from the weighted table.
func (g *Gen) next() []Step {
	total := 0
	for _, c := range g.cmds {
		total += c.w
	}
	n := g.r.Intn(total)
	for _, c := range g.cmds {
		if n < c.w {
			return c.fn()
		}
		n -= c.w
	}
	panic("unreachable")
}

// --- random pieces ---

func (g *Gen) pick(list ...string) string { return list[g.r.Intn(len(list))] }

func (g *Gen) chance(p float64) bool { return g.r.Float64() < p }

// word returns the option s in a random letter case, and rarely followed by a NUL and junk:
// Redis compares option names as C strings, so "nx\x00junk" is NX to it.
func (g *Gen) word(s string) string {
	s = g.name(s)
	if g.chance(0.01) {
		s += "\x00" + g.pick("", "x", "junk")
	}
	return s
}

// name returns the command or subcommand name s in a random letter case. Names never contain a
// NUL: Redis finds commands in a hash table whose bucket is chosen from the whole name but whose
// comparison stops at a NUL, so whether "get\x00x" runs GET depends on Redis's random hash seed.
func (g *Gen) name(s string) string {
	switch g.r.Intn(8) {
	case 0:
		s = strings.ToUpper(s)
	case 1:
		b := []byte(s)
		for i := range b {
			if g.r.Intn(2) == 0 && b[i] >= 'a' && b[i] <= 'z' {
				b[i] -= 'a' - 'A'
			}
		}
		s = string(b)
	case 2, 3, 4:
		s = strings.ToLower(s)
	default:
		s = strings.ToUpper(s)
	}
	return s
}

func (g *Gen) key() []byte { return g.space[g.r.Intn(len(g.space))] }

func (g *Gen) binary(maxLen int) []byte {
	b := make([]byte, g.r.Intn(maxLen+1))
	for i := range b {
		switch g.r.Intn(6) {
		case 0:
			b[i] = "\r\n\x00"[g.r.Intn(3)]
		case 1:
			b[i] = byte(128 + g.r.Intn(128))
		default:
			b[i] = byte(g.r.Intn(256))
		}
	}
	return b
}

func (g *Gen) intString() string {
	switch g.r.Intn(5) {
	case 0:
		return g.pick("0", "1", "-1", "42", "100", "-100", "9223372036854775807", "-9223372036854775808",
			"9223372036854775806", "-9223372036854775807")
	case 1:
		return g.pick("9223372036854775808", "-9223372036854775809", "+1", "01", " 1", "1 ", "1.0", "abc",
			"", "-0", "0x10", "1e3", "00", "-", "12345678901234567890", "1\x00")
	case 2:
		return strconv.FormatInt(g.r.Int63()-g.r.Int63(), 10)
	default:
		return strconv.Itoa(g.r.Intn(2000) - 1000)
	}
}

func (g *Gen) floatString() string {
	switch g.r.Intn(6) {
	case 0:
		return g.pick("1.5", "-0.1", "0.1", "3.0e2", "1e308", "1.7976931348623157e308", "5e-324", "10.5",
			".5", "5.", "-.5", "+1.5", "0x1p3", "0x10", "0X1P-2", "0x1.8", "1e+10", "0", "-0", "1e4931",
			"1.18973149535723176502e+4932", "1e-4940", "0e999999", "00001.5000", "3.14159265358979323846264")
	case 1:
		return g.pick("inf", "-inf", "+inf", "infinity", "-Infinity", "nan", "-nan", "1e4933", "1e-5000",
			"1 ", " 1", "1e", "--1", "+-inf", "1p3", "0b1", "1_0", "abc", "", "0x", ".", "e5", "1e5.5",
			"1\x00", "1,5", "∞")
	case 2:
		return strconv.FormatFloat((g.r.Float64()-0.5)*2e6, 'f', g.r.Intn(12), 64)
	case 3:
		return strconv.FormatFloat((g.r.Float64()-0.5)*2, 'e', g.r.Intn(20), 64)
	case 4:
		return fmt.Sprintf("%.*e", g.r.Intn(18), (g.r.Float64()-0.5)*2*pow10(g.r.Intn(80)-40))
	default:
		return strconv.Itoa(g.r.Intn(200) - 100)
	}
}

func pow10(n int) float64 {
	f := 1.0
	for ; n > 0; n-- {
		f *= 10
	}
	for ; n < 0; n++ {
		f /= 10
	}
	return f
}

func (g *Gen) value() []byte {
	switch g.r.Intn(10) {
	case 0, 1:
		return []byte(g.intString())
	case 2:
		return []byte(g.floatString())
	case 3, 4:
		return g.binary(40)
	case 5:
		return []byte{}
	default:
		return []byte("v" + strconv.Itoa(g.r.Intn(100)))
	}
}

func nowMs() int64 { return time.Now().UnixMilli() }

// expireArg returns an expiry argument for SET/GETEX/SETEX in unit ("ex", "px", "exat", "pxat"):
// usually valid and at least 1000 s from now, sometimes invalid or at an overflow boundary.
func (g *Gen) expireArg(unit string) string {
	now := nowMs()
	switch g.r.Intn(12) {
	case 0:
		return g.pick("abc", "", "1.5", "+5", "01", " 5", "5 ", "9223372036854775808")
	case 1:
		return g.pick("0", "-1", "-100", "-9223372036854775808")
	case 2:
		return g.pick("9223372036854775807", "9223372036854775", "9223372036854776", "9223372036854775806")
	}
	switch unit {
	case "ex":
		return strconv.Itoa(1000 + g.r.Intn(1_000_000))
	case "px":
		return strconv.FormatInt(1_000_001+g.r.Int63n(1_000_000_000), 10)
	case "exat":
		if g.chance(0.3) {
			return strconv.FormatInt(1+g.r.Int63n(now/1000-1000), 10)
		}
		return strconv.FormatInt(now/1000+1000+g.r.Int63n(1_000_000), 10)
	default:
		if g.chance(0.3) {
			return strconv.FormatInt(1+g.r.Int63n(now-1_000_000), 10)
		}
		return strconv.FormatInt(now+1_000_001+g.r.Int63n(1_000_000_000), 10)
	}
}

// expireCmdArg returns the time argument of EXPIRE-family commands, which accept zero and
// negative times (the key is deleted).
func (g *Gen) expireCmdArg(cmd string) string {
	now := nowMs()
	switch g.r.Intn(12) {
	case 0:
		return g.pick("abc", "", "1.5", "+5", "01", " 5", "9223372036854775808")
	case 1:
		return g.pick("0", "-1", "-100", "-9223372036854775808", "-9223372036854775807")
	case 2:
		return g.pick("9223372036854775807", "9223372036854775", "9223372036854776", "-9223372036854775",
			"-9223372036854776", "9223372036854774")
	}
	switch cmd {
	case "expire":
		return strconv.Itoa(1000 + g.r.Intn(1_000_000))
	case "pexpire":
		return strconv.FormatInt(1_000_001+g.r.Int63n(1_000_000_000), 10)
	case "expireat":
		if g.chance(0.3) {
			return strconv.FormatInt(g.r.Int63n(now/1000-1000), 10)
		}
		return strconv.FormatInt(now/1000+1000+g.r.Int63n(1_000_000), 10)
	default:
		if g.chance(0.3) {
			return strconv.FormatInt(g.r.Int63n(now-1_000_000), 10)
		}
		return strconv.FormatInt(now+1_000_001+g.r.Int63n(1_000_000_000), 10)
	}
}

func args(parts ...any) [][]byte {
	out := make([][]byte, 0, len(parts))
	for _, p := range parts {
		switch x := p.(type) {
		case string:
			out = append(out, []byte(x))
		case []byte:
			out = append(out, x)
		case [][]byte:
			out = append(out, x...)
		default:
			panic(fmt.Sprintf("difftest: bad arg %T", p))
		}
	}
	return out
}

func one(check Check, parts ...any) []Step { return []Step{{Args: args(parts...), Check: check}} }

func exact(parts ...any) []Step { return one(Exact, parts...) }

// arity returns cmd with a wrong number of arguments: none, or extra ones.
func (g *Gen) arity(cmd string, n int) []Step {
	a := [][]byte{[]byte(g.name(cmd))}
	for i := 0; i < n; i++ {
		a = append(a, g.key())
	}
	return []Step{{Args: a}}
}

// --- strings ---

func (g *Gen) get() []Step {
	if g.chance(0.03) {
		return g.arity("get", g.pick2(0, 2))
	}
	return exact(g.name("get"), g.key())
}

func (g *Gen) pick2(a, b int) int {
	if g.r.Intn(2) == 0 {
		return a
	}
	return b
}

// setOptions returns 0-4 random SET options, mostly valid combinations.
func (g *Gen) setOptions(forGetex bool) [][]byte {
	var out [][]byte
	n := g.r.Intn(4)
	if g.chance(0.05) {
		n = 4 + g.r.Intn(3)
	}
	for i := 0; i < n; i++ {
		var opt string
		if forGetex {
			opt = g.pick("ex", "px", "exat", "pxat", "persist", "ex", "px", "exat", "pxat", "keepttl", "nx", "get", "foo")
		} else {
			opt = g.pick("nx", "xx", "get", "keepttl", "ex", "px", "exat", "pxat", "ex", "px", "exat", "pxat", "persist", "foo", "e")
		}
		out = append(out, []byte(g.word(opt)))
		switch opt {
		case "ex", "px", "exat", "pxat":
			if g.chance(0.03) && i == n-1 {
				continue // the value is missing: syntax error
			}
			out = append(out, []byte(g.expireArg(opt)))
		}
	}
	return out
}

func (g *Gen) set() []Step {
	if g.chance(0.02) {
		return g.arity("set", g.pick2(0, 1))
	}
	return exact(g.name("set"), g.key(), g.value(), g.setOptions(false))
}

func (g *Gen) setnx() []Step {
	if g.chance(0.05) {
		return g.arity("setnx", g.pick2(1, 3))
	}
	return exact(g.name("setnx"), g.key(), g.value())
}

func (g *Gen) setex() []Step {
	cmd, unit := "setex", "ex"
	if g.chance(0.5) {
		cmd, unit = "psetex", "px"
	}
	if g.chance(0.05) {
		return g.arity(cmd, g.pick2(2, 4))
	}
	return exact(g.name(cmd), g.key(), g.expireArg(unit), g.value())
}

func (g *Gen) getset() []Step {
	if g.chance(0.05) {
		return g.arity("getset", g.pick2(1, 3))
	}
	return exact(g.name("getset"), g.key(), g.value())
}

func (g *Gen) getdel() []Step {
	if g.chance(0.05) {
		return g.arity("getdel", g.pick2(0, 2))
	}
	return exact(g.name("getdel"), g.key())
}

func (g *Gen) getex() []Step {
	if g.chance(0.03) {
		return g.arity("getex", 0)
	}
	return exact(g.name("getex"), g.key(), g.setOptions(true))
}

func (g *Gen) keyList(min, max int) [][]byte {
	n := min + g.r.Intn(max-min+1)
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.key()
	}
	return out
}

func (g *Gen) mget() []Step {
	if g.chance(0.03) {
		return g.arity("mget", 0)
	}
	return exact(g.name("mget"), g.keyList(1, 5))
}

func (g *Gen) mset() []Step {
	cmd := g.pick("mset", "msetnx")
	n := 1 + g.r.Intn(4)
	a := [][]byte{[]byte(g.name(cmd))}
	var one []byte // the key of every pair, with OneKeyMSETNX
	if cmd == "msetnx" && g.opts.OneKeyMSETNX {
		one = g.key()
	}
	for i := 0; i < n; i++ {
		k := one
		if k == nil {
			k = g.key()
		}
		a = append(a, k, g.value())
	}
	if g.chance(0.05) {
		a = a[:len(a)-1] // odd: wrong number of arguments
	}
	if g.chance(0.02) {
		a = a[:1]
	}
	return []Step{{Args: a}}
}

func (g *Gen) incr() []Step {
	cmd := g.pick("incr", "decr", "incrby", "decrby")
	if g.chance(0.03) {
		return g.arity(cmd, 3)
	}
	if cmd == "incr" || cmd == "decr" {
		if g.chance(0.03) {
			return g.arity(cmd, 2)
		}
		return exact(g.name(cmd), g.key())
	}
	if g.chance(0.03) {
		return g.arity(cmd, 1)
	}
	return exact(g.name(cmd), g.key(), g.intString())
}

func (g *Gen) incrbyfloat() []Step {
	if g.chance(0.03) {
		return g.arity("incrbyfloat", g.pick2(1, 3))
	}
	return exact(g.name("incrbyfloat"), g.key(), g.floatString())
}

func (g *Gen) append() []Step {
	if g.chance(0.03) {
		return g.arity("append", g.pick2(1, 3))
	}
	if g.opts.MaxBulkLen > 0 && g.chance(0.01) {
		// Two of these exceed proto-max-bulk-len: "string exceeds maximum allowed size".
		big := make([]byte, g.opts.MaxBulkLen/2+1+g.r.Intn(100))
		for i := range big {
			big[i] = 'x'
		}
		return exact(g.name("append"), g.key(), big)
	}
	return exact(g.name("append"), g.key(), g.value())
}

func (g *Gen) strlen() []Step {
	if g.chance(0.05) {
		return g.arity("strlen", g.pick2(0, 2))
	}
	return exact(g.name("strlen"), g.key())
}

func (g *Gen) getrange() []Step {
	name := g.pick("getrange", "getrange", "substr")
	if g.chance(0.05) {
		return g.arity(name, g.pick2(2, 4))
	}
	idx := func() string {
		return g.pick("0", "1", "2", "5", "100", "-1", "-2", "-5", "-100", "abc", "1.5",
			"9223372036854775807", "-9223372036854775808", "")
	}
	return exact(g.name(name), g.key(), idx(), idx())
}

func (g *Gen) setrange() []Step {
	if g.chance(0.05) {
		return g.arity("setrange", g.pick2(2, 4))
	}
	off := g.pick("0", "1", "3", "10", "100", "-1", "abc", "", "1.5", "9223372036854775807")
	if g.opts.MaxBulkLen > 0 && g.chance(0.05) {
		off = strconv.Itoa(g.opts.MaxBulkLen - g.r.Intn(3)) // at the bound, one byte over…
	}
	return exact(g.name("setrange"), g.key(), off, g.pick("", "x", "hello", string(g.binary(20))))
}

// --- keys ---

// object sends OBJECT. ENCODING and REFCOUNT depend on how the value was written, so they are
// compared exactly; IDLETIME by shape only (Redis's shared integers carry the idle time of
// every key that holds them), FREQ exactly (both servers refuse it without an LFU policy).
func (g *Gen) object() []Step {
	c := g.name("object")
	switch g.r.Intn(12) {
	case 0, 1, 2, 3:
		return exact(c, g.name("encoding"), g.key())
	case 4, 5:
		if g.inMulti {
			// Redis counts the reference the transaction's queued command still holds to a
			// value it wrote: 2 where Vela (and Redis outside MULTI) says 1.
			return exact(c, g.name("encoding"), g.key())
		}
		return exact(c, g.name("refcount"), g.key())
	case 6:
		if g.opts.NoIdleTime {
			return exact(c, g.name("encoding"), g.key())
		}
		return one(Shape, c, g.name("idletime"), g.key())
	case 7:
		return exact(c, g.name("freq"), g.key())
	case 8:
		return exact(c, g.name("help"))
	case 9: // wrong numbers of arguments
		sub := g.name(g.pick("encoding", "refcount", "idletime", "freq", "help"))
		if g.chance(0.5) && !strings.EqualFold(sub, "help") {
			return exact(c, sub)
		}
		return exact(c, sub, g.key(), g.key())
	case 10:
		return exact(c)
	}
	return exact(c, g.pick("nosuch", "encodings", "bad\r\nsub"), g.key())
}

func (g *Gen) del() []Step {
	cmd := g.pick("del", "unlink")
	if g.chance(0.03) {
		return g.arity(cmd, 0)
	}
	return exact(g.name(cmd), g.keyList(1, 4))
}

func (g *Gen) exists() []Step {
	cmd := g.pick("exists", "touch")
	if g.chance(0.03) {
		return g.arity(cmd, 0)
	}
	return exact(g.name(cmd), g.keyList(1, 4))
}

func (g *Gen) typ() []Step {
	if g.chance(0.05) {
		return g.arity("type", g.pick2(0, 2))
	}
	return exact(g.name("type"), g.key())
}

func (g *Gen) expire() []Step {
	cmd := g.pick("expire", "pexpire", "expireat", "pexpireat")
	if g.chance(0.03) {
		return g.arity(cmd, 1)
	}
	a := args(g.name(cmd), g.key(), g.expireCmdArg(cmd))
	n := 0
	switch g.r.Intn(10) {
	case 0, 1, 2, 3:
	case 4, 5, 6, 7:
		n = 1
	case 8:
		n = 2
	default:
		n = 3
	}
	for i := 0; i < n; i++ {
		opt := g.pick("nx", "xx", "gt", "lt", "nx", "xx", "gt", "lt", "foo", "x\r\ny\r\n", "")
		a = append(a, []byte(g.word(opt)))
	}
	return []Step{{Args: a}}
}

func (g *Gen) ttl() []Step {
	cmd := g.pick("ttl", "pttl", "expiretime", "pexpiretime")
	if g.chance(0.06) { // each of the four fails some 10 times in 24,000 commands
		return g.arity(cmd, g.pick2(0, 2))
	}
	check := TTLSeconds
	if cmd[0] == 'p' {
		check = TTLMillis
	}
	return one(check, g.name(cmd), g.key())
}

// move is RENAME, RENAMENX or COPY, with COPY's options (DB only as 0 or a database neither
// server has: Vela has only database 0, where Redis would copy to another).
func (g *Gen) move() []Step {
	cmd := g.pick("rename", "renamenx", "copy")
	if g.chance(0.04) {
		return g.arity(cmd, g.pick2(0, 1))
	}
	a := [][]byte{[]byte(g.name(cmd)), g.key(), g.key()}
	if cmd == "copy" {
		for n := g.r.Intn(3); n > 0; n-- {
			switch g.r.Intn(7) {
			case 0, 1, 2:
				a = append(a, []byte(g.word("replace")))
			case 3, 4:
				a = append(a, []byte(g.word("db")), []byte(g.pick("0", "0", "16", "-1", "x", "99999999999", "0\x00")))
			case 5:
				a = append(a, []byte(g.word("db")))
			default:
				a = append(a, []byte(g.pick("foo", "", "replac")))
			}
		}
	}
	return []Step{{Args: a}}
}

// lcs is LCS with its options, rarely a wrong one.
func (g *Gen) lcs() []Step {
	if g.chance(0.03) {
		return g.arity("lcs", g.pick2(0, 1))
	}
	a := [][]byte{[]byte(g.name("lcs")), g.key(), g.key()}
	for n := g.r.Intn(4); n > 0; n-- {
		switch g.r.Intn(9) {
		case 0, 1:
			a = append(a, []byte(g.word("idx")))
		case 2:
			a = append(a, []byte(g.word("len")))
		case 3, 4:
			a = append(a, []byte(g.word("withmatchlen")))
		case 5, 6:
			a = append(a, []byte(g.word("minmatchlen")), []byte(g.pick("0", "1", "2", "3", "-5", "x", "99999999999999999999")))
		case 7:
			a = append(a, []byte(g.word("minmatchlen")))
		default:
			a = append(a, []byte(g.pick("foo", "")))
		}
	}
	return []Step{{Args: a}}
}

func (g *Gen) dump() []Step {
	if g.chance(0.04) {
		return g.arity("dump", g.pick2(0, 2))
	}
	return one(DumpPayload, g.name("dump"), g.key())
}

// restore is RESTORE of a value's payload (rdb.Dump writes what Redis writes, but for LZF),
// sometimes a damaged one, with a TTL, relative or absolute, and options. IDLETIME and FREQ
// come only with values both servers refuse: Vela applies valid ones on the memory store only
// (TestRestoreSetsAccessLikeRedis compares those with Redis), so OBJECT would differ on the
// other stores.
func (g *Gen) restore() []Step {
	if g.chance(0.03) {
		return g.arity("restore", g.pick2(1, 2))
	}
	payload := rdb.Dump(g.value())
	switch g.r.Intn(12) {
	case 0:
		payload = append([]byte(nil), payload...)
		payload[g.r.Intn(len(payload))] ^= byte(1 + g.r.Intn(255))
	case 1:
		payload = payload[:g.r.Intn(len(payload))]
	}
	// As every expiry here (doc.go): none falls due while the sequence runs.
	ttl := g.pick("0", "0", "0", "2000000", "-1", "x")
	abs := g.chance(0.15)
	if abs {
		ttl = g.pick("1", strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10))
	}
	a := [][]byte{[]byte(g.name("restore")), g.key(), []byte(ttl), payload}
	if abs {
		a = append(a, []byte(g.word("absttl")))
	}
	if g.chance(0.6) {
		a = append(a, []byte(g.word("replace")))
	}
	if g.chance(0.1) {
		switch g.r.Intn(4) {
		case 0:
			a = append(a, []byte(g.word("idletime")), []byte(g.pick("-1", "x")))
		case 1:
			a = append(a, []byte(g.word("freq")), []byte(g.pick("-1", "256", "x")))
		case 2:
			a = append(a, []byte(g.word(g.pick("idletime", "freq"))))
		default:
			a = append(a, []byte(g.pick("foo", "")))
		}
	}
	return []Step{{Args: a}}
}

// databases is MOVE or SWAPDB with indexes both servers answer alike: 0, and ones neither has
// (Redis would move a key to database 1; Vela has only 0).
func (g *Gen) databases() []Step {
	db := func() []byte { return []byte(g.pick("0", "0", "16", "-1", "x", "99999999999", "0\x00")) }
	if g.chance(0.5) {
		return []Step{{Args: [][]byte{[]byte(g.name("move")), g.key(), db()}}}
	}
	return []Step{{Args: [][]byte{[]byte(g.name("swapdb")), db(), db()}}}
}

// randomkey is RANDOMKEY, compared by shape: a key (which one is random) or a null.
func (g *Gen) randomkey() []Step {
	if g.chance(0.05) {
		return g.arity("randomkey", 1)
	}
	return one(Shape, g.name("randomkey"))
}

func (g *Gen) persist() []Step {
	if g.chance(0.05) {
		return g.arity("persist", g.pick2(0, 2))
	}
	return exact(g.name("persist"), g.key())
}

func (g *Gen) pattern() []byte {
	if g.chance(0.6) {
		return []byte(g.pick("*", "k*", "key:?", "key:[0-9]", "key:[^1]*", "*\\**", "[", "[a-", "\\[x]", "**",
			"*:*", "?", "", "[z-a]*", "*\x00*", "\xff*", "a*b*c*d*", "[\x80-\xff]*", "[a-\xff]", "[\xff-a]",
			"key:1[0]", "*[", "\\", "k\\", "[[]x]", "[]]", "[^]", "[\\]", "*1}", "*{*", "k?z", "k\r\nz", "?*",
			"*?", "[!x]*", "[a-c]", "[A-Z]*", "\\*", "*\\"))
	}
	alphabet := []string{"*", "?", "[", "]", "^", "-", "\\", "a", "k", "e", "y", ":", "1", "0", "\x00", "\xff", "z"}
	var b strings.Builder
	for n := g.r.Intn(8); n > 0; n-- {
		b.WriteString(alphabet[g.r.Intn(len(alphabet))])
	}
	return []byte(b.String())
}

func (g *Gen) keys() []Step {
	if g.chance(0.05) {
		return g.arity("keys", g.pick2(0, 2))
	}
	return one(Sorted, g.name("keys"), g.pattern())
}

func (g *Gen) scan() []Step {
	if g.chance(0.03) {
		return g.arity("scan", 0)
	}
	a := args(g.name("scan"))
	check := ScanAll
	switch g.r.Intn(10) {
	case 0:
		// Cursor parsing: strtoul accepts "", a sign and anything after a NUL; the iteration
		// from a non-zero cursor is server-specific, so only the shape is compared.
		a = append(a, []byte(g.pick("", "+0", "-0", "0\x00x", "abc", " 0", "0 ", "1.5", "0x10", "+", "-",
			"18446744073709551615", "18446744073709551616", "-1", "-18446744073709551616", "99999999999999999999")))
		check = Shape
	default:
		a = append(a, []byte("0"))
	}
	for n := g.r.Intn(4); n > 0; n-- {
		switch g.r.Intn(7) {
		case 0, 1:
			a = append(a, []byte(g.word("match")), g.pattern())
		case 2, 3:
			a = append(a, []byte(g.word("count")), []byte(g.pick("1", "2", "5", "10", "100", "1000")))
		case 4:
			// Not "none": Redis 7.0 reports a key that has expired but is not yet reclaimed as
			// of type none, so what SCAN TYPE none returns depends on Redis's expiry clock.
			a = append(a, []byte(g.word("type")), []byte(g.word(g.pick("string", "hash", "list", "foo"))))
		case 5:
			a = append(a, []byte(g.word("count")), []byte(g.pick("0", "-1", "abc", "", "9223372036854775808")))
			check = Shape
		default:
			a = append(a, []byte(g.word(g.pick("match", "count", "type", "foo"))))
			check = Shape
		}
	}
	return []Step{{Args: a, Check: check}}
}

// --- connection and server ---

func (g *Gen) ping() []Step {
	switch g.r.Intn(6) {
	case 0:
		return exact(g.name("ping"), g.value(), g.value())
	case 1, 2:
		return exact(g.name("ping"), g.value())
	}
	return exact(g.name("ping"))
}

func (g *Gen) echo() []Step {
	if g.chance(0.1) {
		return g.arity("echo", g.pick2(0, 2))
	}
	return exact(g.name("echo"), g.value())
}

func (g *Gen) quit() []Step {
	s := exact(g.name("quit"))
	if g.chance(0.3) {
		s = exact(g.name("quit"), "a", "b")
	}
	s[0].Closes = true
	return s
}

func (g *Gen) reset() []Step {
	if g.chance(0.1) {
		return g.arity("reset", 1)
	}
	return exact(g.name("reset"))
}

func (g *Gen) selectDB() []Step {
	if g.chance(0.1) {
		return g.arity("select", g.pick2(0, 2))
	}
	return exact(g.name("select"), g.pick("0", "0", "1", "-1", "abc", "2147483648", "-2147483649", "0\x00", "00", "", "15"))
}

func (g *Gen) password() string {
	if g.opts.Password != "" && g.chance(0.5) {
		return g.opts.Password
	}
	return g.pick("wrong", "", "x y", "secret\x00")
}

func (g *Gen) auth() []Step {
	switch g.r.Intn(6) {
	case 0:
		return exact(g.name("auth"))
	case 1:
		return exact(g.name("auth"), "a", "b", "c")
	case 2, 3:
		return exact(g.name("auth"), g.password())
	}
	return exact(g.name("auth"), g.pick("default", "default", "nouser", "DEFAULT"), g.password())
}

func (g *Gen) clientName() string {
	return g.pick("name", "app-1", "", "bad name", "bad\nname", "caf\xc3\xa9", "~!@#", "n\x00")
}

func (g *Gen) hello() []Step {
	a := args(g.name("hello"))
	if g.chance(0.85) {
		a = append(a, []byte(g.pick("2", "3", "3", "2", "3", "4", "1", "0", "abc", "-1", "", "3\x00")))
	}
	for n := g.r.Intn(3); n > 0; n-- {
		switch g.r.Intn(5) {
		case 0, 1:
			a = append(a, []byte(g.word("setname")), []byte(g.clientName()))
		case 2:
			a = append(a, []byte(g.name("auth")), []byte(g.pick("default", "nouser")), []byte(g.password()))
		case 3:
			a = append(a, []byte(g.word(g.pick("auth", "setname"))))
		default:
			a = append(a, []byte(g.pick("foo", "bad\r\nopt", "3")))
		}
	}
	return []Step{{Args: a, Check: Hello}}
}

func (g *Gen) client() []Step {
	c := g.name("client")
	switch g.r.Intn(14) {
	case 0, 1, 2:
		return exact(c, g.name("setname"), g.clientName())
	case 3, 4:
		return exact(c, g.name("getname"))
	case 5:
		return one(Shape, c, g.name("id"))
	case 6:
		return one(Shape, c, g.name("list"))
	case 7:
		typ := g.pick("master", "replica", "slave", "pubsub", "foo", "normal", "normal\x00")
		check := Exact
		if strings.HasPrefix(typ, "normal") {
			check = Shape // lists this very connection
		}
		return one(check, c, g.name("list"), g.word("type"), g.word(typ))
	case 8:
		return exact(c, g.name("list"), g.word("id"), g.pick("999999", "0", "-1", "abc", "1.5"), g.pick("999998", "x"))
	case 9:
		return exact(c, g.name("list"), g.pick("type", "id", "foo", "type normal"), g.pick("normal", "1"), g.pick("id", "x"))
	case 10:
		return exact(c)
	case 11:
		return exact(c, g.name(g.pick("setname", "getname", "id", "list")), "a", "b")
	case 12:
		return exact(c, g.name(g.pick("setname", "getname", "id")), g.pick("", "a"), g.pick("", "a"), "x")
	}
	return exact(c, g.pick("foo", "SETNAME2", "setname2", "bad\r\nsub", strings.Repeat("s", 140), "nosuch"))
}

func (g *Gen) command() []Step {
	c := g.name("command")
	switch g.r.Intn(10) {
	case 0:
		return one(Shape, c)
	case 1:
		return one(Shape, c, g.name("count"))
	case 2:
		return exact(c, g.name("count"), "x")
	case 3:
		return one(Shape, c, g.name("info"), g.pick("get", "set", "SET"))
	case 4:
		return exact(c, g.name("info"), g.pick("nosuch", "get\x01", ""))
	case 5:
		return one(Shape, c, g.name("docs"), g.pick("get", "set", "client"))
	case 6:
		return exact(c, g.name("docs"), g.pick("nosuch", "get\x01"))
	case 7:
		return one(Shape, c, g.name("info"))
	case 8:
		return g.getkeys()
	}
	return exact(c, g.pick("foo", "count\r\n", "nosuch"))
}

// getkeys sends COMMAND GETKEYS or GETKEYSANDFLAGS with a command line of random length: a
// command with keys (by position, count argument or variable flags), a subcommand, one without
// keys or none at all, and arguments that may make it too short, too long or malformed.
func (g *Gen) getkeys() []Step {
	line := []any{g.name("command"), g.name(g.pick("getkeys", "getkeysandflags"))}
	switch name := g.pick("get", "set", "mset", "msetnx", "mget", "del", "getex", "expire", "eval",
		"evalsha_ro", "object", "memory", "config", "ping", "nosuch", ""); name {
	case "eval", "evalsha_ro":
		line = append(line, g.name(name), "return 1", g.pick("0", "1", "2", "-1", "1x", " 2", "x", "+1"))
	case "object", "memory", "config":
		line = append(line, g.name(name), g.name(g.pick("encoding", "usage", "freq", "get", "help", "nosuch")))
	case "set":
		line = append(line, g.name(name), g.key(), g.value())
		for range g.r.Intn(4) {
			line = append(line, g.pick("GET", "get", "EX", "10", "NX", "gets", "KEEPTTL"))
		}
	default:
		line = append(line, g.name(name))
	}
	for range g.r.Intn(5) {
		line = append(line, g.key())
	}
	return exact(line...)
}

// configNames are parameters both servers report identically (the test starts them so).
var configNames = []string{"maxclients", "timeout", "proto-max-bulk-len", "maxmemory", "maxmemory-policy",
	"databases", "appendonly", "save", "requirepass", "maxmemory-samples", "notify-keyspace-events",
	"nosuch-param", "MAXCLIENTS", "Databases", "latency-tracking", "latency-tracking-info-percentiles"}

func (g *Gen) config() []Step {
	c := g.name("config")
	if g.chance(0.4) {
		return g.configSet(c)
	}
	switch g.r.Intn(6) {
	case 0, 1, 2:
		return exact(c, g.name("get"), g.pick(configNames...))
	case 3:
		return one(UnorderedPairs, c, g.name("get"), g.pick(configNames...), g.pick(configNames...))
	case 4:
		return exact(c, g.name("get"))
	}
	return exact(c, g.pick("foo", "bad\r\nsub", "gett"))
}

// configSet sends CONFIG SET forms both servers answer alike without changing anything the
// sequence depends on: errors, and parameters set to the value they have (the slow log's and
// latency tracking's to Redis's defaults, which both servers start with): in a cluster each
// member has its own.
func (g *Gen) configSet(c string) []Step {
	set := g.name("set")
	pair := func() []any {
		switch g.r.Intn(10) {
		case 0:
			return []any{g.pick("slowlog-max-len", "SLOWLOG-MAX-LEN"), g.pick("128", "abc", "-1", "+5", "", "1.5")}
		case 8: // to the value it has (a cluster's members each have their own), or refused;
			// TestKeyspaceNotificationsLikeRedis compares the values CONFIG GET shows after a change
			return []any{g.pick("notify-keyspace-events", "Notify-Keyspace-Events"), g.pick("", "Kq", "q", "AKE?")}
		case 1:
			return []any{g.pick("slowlog-log-slower-than", "Slowlog-Log-Slower-Than"), g.pick("10000", "-2", "x", "1e3")}
		case 2:
			return []any{g.pick("databases", "cluster-enabled"), g.pick("1", "16", "no")}
		case 3:
			return g.pick2Pairs([]any{"save", ""}, []any{"appendonly", "no"})
		case 4:
			return g.pick2Pairs([]any{"maxmemory", "0"}, []any{"MaxMemory-Samples", "5"})
		case 5:
			return []any{g.pick("nosuch-param", "requirepass2"), "1"}
		case 6:
			// to the value they have (a cluster's members each have their own), or refused
			return []any{g.pick("latency-tracking", "Latency-Tracking"), g.pick("yes", "YES", "maybe", "1")}
		case 7:
			return []any{"latency-tracking-info-percentiles",
				g.pick("50 99 99.9", "50.0 99 99.90", "50  99", "abc", "101", "-0.5", " 5", "inf")}
		}
		return []any{"slowlog-max-len", "128"}
	}
	parts := append([]any{c, set}, pair()...)
	for n := g.r.Intn(3); n > 0; n-- {
		parts = append(parts, pair()...)
	}
	if g.chance(0.05) {
		parts = append(parts, "dangling")
	}
	return exact(parts...)
}

func (g *Gen) pick2Pairs(a, b []any) []any {
	if g.chance(0.5) {
		return a
	}
	return b
}

func (g *Gen) info() []Step {
	a := args(g.name("info"))
	for n := g.r.Intn(3); n > 0; n-- {
		a = append(a, []byte(g.word(g.pick("server", "clients", "memory", "stats", "keyspace", "default", "all", "nosuch"))))
	}
	return []Step{{Args: a, Check: Shape}}
}

// pubsub sends PUBLISH and SPUBLISH, PUBSUB's introspection, and UNSUBSCRIBE, PUNSUBSCRIBE
// and SUNSUBSCRIBE of at most one channel (each answers one frame when nothing is subscribed),
// with their argument errors. Subcommand names never carry a NUL (see name).
func (g *Gen) pubsub() []Step {
	channel := func() any { return g.pick("news", "n*", "", "a b", "\x00\xff") }
	switch g.r.Intn(8) {
	case 0:
		return exact(g.name(g.pick("publish", "spublish")), channel(), g.value())
	case 1:
		return g.arity(g.pick("publish", "spublish"), g.pick2(1, 3))
	case 2:
		list := g.pick("channels", "shardchannels")
		if g.chance(0.2) {
			return exact(g.name("pubsub"), g.name(list), "a", "b") // a syntax error
		}
		if g.chance(0.5) {
			return exact(g.name("pubsub"), g.name(list))
		}
		return exact(g.name("pubsub"), g.name(list), channel())
	case 3:
		return exact(g.name("pubsub"), g.name(g.pick("numsub", "shardnumsub")), channel(), channel())
	case 4:
		if g.chance(0.2) {
			return exact(g.name("pubsub"), g.name("numpat"), "x")
		}
		return exact(g.name("pubsub"), g.name("numpat"))
	case 5:
		if g.chance(0.3) {
			return exact(g.name("pubsub"))
		}
		return exact(g.name("pubsub"), g.pick("nosuch", "numsubx", ""))
	case 6:
		return exact(g.name(g.pick("unsubscribe", "punsubscribe", "sunsubscribe")))
	}
	return exact(g.name(g.pick("unsubscribe", "punsubscribe", "sunsubscribe")), channel())
}

// wait sends WAIT in forms that answer at once or within 2 ms on a node without replicas (Redis
// and Vela alike: 0), or fail on their arguments; inside MULTI it answers at once.
func (g *Gen) wait() []Step {
	w := g.name("wait")
	check := Exact
	if g.opts.CopiesCounted {
		check = Shape
	}
	switch g.r.Intn(4) {
	case 0:
		return one(check, w, g.pick("0", "-1", "-5", "00"), g.pick("0", "1", "100", "9223372036854775807"))
	case 1:
		return one(check, w, g.pick("1", "3"), g.pick("1", "2"))
	case 2: // a bad argument: the count is read first
		if g.chance(0.5) {
			return exact(w, g.pick("abc", "1.5", "", "9223372036854775808"), g.pick("abc", "-1", "0"))
		}
		return exact(w, "0", g.pick("abc", "-1", "1.5", ""))
	}
	if g.chance(0.5) {
		return exact(w)
	}
	return exact(w, "0", "0", "0")
}

// role sends ROLE: both servers are primaries without replicas.
func (g *Gen) role() []Step {
	if g.chance(0.2) {
		return exact(g.name("role"), "x")
	}
	return exact(g.name("role"))
}

func (g *Gen) time() []Step {
	if g.chance(0.2) {
		return exact(g.name("time"), "x")
	}
	return one(Shape, g.name("time"))
}

func (g *Gen) dbsize() []Step {
	if g.chance(0.1) {
		return exact(g.name("dbsize"), "x")
	}
	return []Step{{Args: args("EXISTS", g.space)}, {Args: args(g.name("dbsize"))}}
}

func (g *Gen) flush() []Step {
	a := args(g.name(g.pick("flushdb", "flushall")))
	switch g.r.Intn(6) {
	case 0:
		a = append(a, []byte(g.word("async")))
	case 1:
		a = append(a, []byte(g.word("sync")))
	case 2:
		a = append(a, []byte(g.pick("foo", "")))
	case 3:
		a = append(a, []byte("sync"), []byte("async"))
	}
	return []Step{{Args: a}}
}

// --- garbage and the wire ---

func (g *Gen) unknown() []Step {
	name := g.pick("foo", "SETT", "gett", "ge", "bad\r\nname", "", strings.Repeat("N", 200), "kill", "x y", "\xff")
	a := args(name)
	for n := g.r.Intn(5); n > 0; n-- {
		switch g.r.Intn(4) {
		case 0:
			a = append(a, []byte(strings.Repeat("a", 30+g.r.Intn(120))))
		default:
			a = append(a, g.value())
		}
	}
	return []Step{{Args: a}}
}

// inline returns a telnet-style request: words, quoted strings with escapes, quotes inside
// words, and sometimes unbalanced quotes (a protocol error that closes the connection).
func (g *Gen) inline() []Step {
	var b strings.Builder
	cmd := g.pick("SET", "GET", "ECHO", "PING", "EXISTS", "APPEND", "set", "MGET")
	b.WriteString(cmd)
	closes := false
	for n := 1 + g.r.Intn(3); n > 0; n-- {
		b.WriteString(g.pick(" ", "  ", "\t", " \v", "\f "))
		switch g.r.Intn(12) {
		case 0:
			b.WriteString(`"a b\r\n\x41\x4g\"\\q"`)
		case 1:
			b.WriteString(`'it\'s \x41'`)
		case 2:
			b.WriteString(`foo"bar baz"`)
		case 3:
			b.WriteString(`a'b c'd`)
			closes = true // a closing quote must be followed by a space
		case 4:
			b.WriteString(`"unterminated`)
			closes = true
		case 5:
			b.WriteString(`"\xff\x00\xZZ"`)
		case 6:
			b.WriteString("a\vb")
		case 7:
			b.WriteString(`""`)
		case 8:
			b.WriteString(`'\n'`)
		default:
			b.WriteString(string(g.space[g.r.Intn(6)]))
		}
	}
	end := g.pick("\r\n", "\n", " \r\n")
	line := b.String() + end
	if g.chance(0.2) {
		line = "\r\n" + line // an empty line is skipped without a reply
	}
	return []Step{{Raw: []byte(line), Replies: 1, Closes: closes}}
}

// protocolError returns a malformed multibulk request; both servers reply with a protocol error
// and close the connection.
func (g *Gen) protocolError() []Step {
	bad := []string{
		"*1\r\n$abc\r\n",
		"*x\r\n",
		"*1\r\n+foo\r\n",
		"*2\r\n$3\r\nGET\r\n:1\r\n",
		"*1\r\n$-1\r\n",
		"*3000000000\r\n",
		"*1\r\n$" + strconv.Itoa(g.opts.MaxBulkLen+1) + "\r\n",
		"*+1\r\n",
		"*1\r\n$+3\r\nGET\r\n",
	}
	if g.opts.MaxBulkLen == 0 {
		bad = bad[:6]
	}
	return []Step{{Raw: []byte(g.pick(bad...)), Replies: 1, Closes: true}}
}

// --- transactions ---

func (g *Gen) multi() []Step {
	if g.chance(0.1) {
		return g.arity("multi", 2)
	}
	return exact(g.name("multi"))
}

// endTx is EXEC or DISCARD: inside MULTI they end it, outside they fail.
func (g *Gen) endTx() []Step {
	name := g.pick("exec", "exec", "exec", "discard")
	if g.chance(0.05) {
		return g.arity(name, 2)
	}
	return exact(g.name(name))
}

func (g *Gen) watch() []Step {
	if g.chance(0.1) {
		return g.arity("watch", 0)
	}
	return []Step{{Args: append(args(g.name("watch")), g.keyList(1, 3)...)}}
}

func (g *Gen) unwatch() []Step {
	if g.chance(0.2) {
		return g.arity("unwatch", 2)
	}
	return exact(g.name("unwatch"))
}

// --- bits ---

// bitOffset is a bit offset: mostly small, sometimes refused, and with a lowered
// proto-max-bulk-len sometimes at its bound (cheap there, where the default bound would make
// both servers allocate 512 MB).
func (g *Gen) bitOffset() string {
	if g.opts.MaxBulkLen > 0 && g.chance(0.04) {
		return strconv.Itoa(g.opts.MaxBulkLen*8 - g.r.Intn(3) + 1)
	}
	if g.chance(0.6) {
		return strconv.Itoa(g.r.Intn(90))
	}
	return g.pick("-1", "abc", "", "1.5", "01", "+1", "9223372036854775807", "4294967296", "#1")
}

func (g *Gen) getbit() []Step {
	if g.chance(0.03) {
		return g.arity("getbit", g.pick2(1, 3))
	}
	return exact(g.name("getbit"), g.key(), g.bitOffset())
}

func (g *Gen) setbit() []Step {
	if g.chance(0.03) {
		return g.arity("setbit", g.pick2(2, 4))
	}
	return exact(g.name("setbit"), g.key(), g.bitOffset(), g.pick("0", "1", "1", "0", "2", "-1", "a", "01", ""))
}

// bitIndex is a BITCOUNT or BITPOS start or end.
func (g *Gen) bitIndex() string {
	if g.chance(0.7) {
		return strconv.Itoa(g.r.Intn(50) - 25)
	}
	return g.pick("0", "-1", "100", "-100", "abc", "", "9223372036854775807", "-9223372036854775808")
}

func (g *Gen) bitUnit() string { return g.word(g.pick("bit", "byte", "bit", "bits", "")) }

func (g *Gen) bitcount() []Step {
	a := []any{g.name("bitcount"), g.key()}
	switch g.r.Intn(10) {
	case 0:
	case 1:
		a = append(a, g.bitIndex())
	case 2, 3, 4:
		a = append(a, g.bitIndex(), g.bitIndex())
	case 9:
		a = append(a, g.bitIndex(), g.bitIndex(), g.bitUnit(), "x")
	default:
		a = append(a, g.bitIndex(), g.bitIndex(), g.bitUnit())
	}
	return exact(a...)
}

func (g *Gen) bitpos() []Step {
	if g.chance(0.03) {
		return g.arity("bitpos", 1)
	}
	a := []any{g.name("bitpos"), g.key(), g.pick("0", "1", "0", "1", "2", "-1", "x")}
	switch g.r.Intn(10) {
	case 0, 1:
	case 2, 3:
		a = append(a, g.bitIndex())
	case 4, 5:
		a = append(a, g.bitIndex(), g.bitIndex())
	case 9:
		a = append(a, g.bitIndex(), g.bitIndex(), g.bitUnit(), "x")
	default:
		a = append(a, g.bitIndex(), g.bitIndex(), g.bitUnit())
	}
	return exact(a...)
}

// bitfield is BITFIELD or BITFIELD_RO with up to six subcommands, mostly valid.
func (g *Gen) bitfield() []Step {
	a := []any{g.name(g.pick("bitfield", "bitfield", "bitfield_ro")), g.key()}
	typ := func() string {
		if g.chance(0.85) {
			return g.pick("u", "i") + strconv.Itoa(1+g.r.Intn(64))
		}
		return g.pick("u64", "i65", "i0", "I8", "x", "", "i08", "u-1", "i8\x00x")
	}
	off := func() string {
		if g.chance(0.25) {
			return "#" + strconv.Itoa(g.r.Intn(8))
		}
		if g.chance(0.9) {
			return strconv.Itoa(g.r.Intn(80))
		}
		return g.pick("-1", "#-1", "abc", "#", "1.5", "9223372036854775807", "#9223372036854775807")
	}
	val := func() string {
		if g.chance(0.6) {
			return strconv.Itoa(g.r.Intn(600) - 300)
		}
		if g.chance(0.7) {
			return strconv.FormatInt(int64(g.r.Uint64()), 10)
		}
		return g.pick("9223372036854775807", "-9223372036854775808", "x", "1.5", "")
	}
	for n := g.r.Intn(7); n > 0; n-- {
		switch g.r.Intn(12) {
		case 0, 1, 2:
			a = append(a, g.word("get"), typ(), off())
		case 3, 4, 5:
			a = append(a, g.word("set"), typ(), off(), val())
		case 6, 7, 8:
			a = append(a, g.word("incrby"), typ(), off(), val())
		case 9, 10:
			a = append(a, g.word("overflow"), g.word(g.pick("wrap", "sat", "fail", "fail", "sat", "nope")))
		default:
			a = append(a, g.pick("get", "set", "incrby", "overflow", "junk")) // too few arguments
		}
	}
	return exact(a...)
}

func (g *Gen) bitop() []Step {
	if g.chance(0.03) {
		return g.arity("bitop", g.pick2(0, 2))
	}
	a := []any{g.name("bitop"), g.word(g.pick("and", "or", "xor", "not", "not", "nand", "")), g.key()}
	for n := 1 + g.r.Intn(3); n > 0; n-- {
		a = append(a, g.key())
	}
	return exact(a...)
}
