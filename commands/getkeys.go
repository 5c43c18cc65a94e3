package commands

import (
	"bytes"
	"slices"
	"sync"

	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// COMMAND GETKEYS and GETKEYSANDFLAGS: which arguments of a command line are keys, found the way
// Redis 7 finds them, from the command's key specifications. A command Redis has uses Redis's
// own specifications (redisdocs.json); Vela's own commands have one made from their key
// positions (keySpecsOf).

// keySpec is one key specification: where its keys begin (an argument index) and which follow,
// a range or a count given by an argument. Redis has a third way to begin, at a keyword, which
// none of the commands Vela serves uses.
type keySpec struct {
	flags  []string // as COMMAND INFO lists them ("RW", "access", "update"…)
	index  int      // begin_search: the first key's index
	keynum bool     // find_keys: a count argument (keynum) rather than a range
	// range: the last key relative to the first (negative: from the end), the step, and limit
	// (with a negative lastKey, only 1/limit of the remaining arguments hold keys)
	lastKey, keyStep, limit int
	// keynum: the count's index and the first key's, both relative to index
	keyNumIdx, firstKey int
}

// variableFlags is the key specification flag saying that the flags depend on the arguments.
const variableFlags = "variable_flags"

// Redis's replies to GETKEYS for a command line it cannot find keys in.
const (
	errGetKeysCommand = Error("ERR Invalid command specified")
	errGetKeysNoKeys  = Error("ERR The command has no key arguments")
	errGetKeysArity   = Error("ERR Invalid number of arguments specified for command")
	errGetKeysArgs    = Error("ERR Invalid arguments specified for command")
)

// redisKeySpecs are the key specifications of the commands Redis has, decoded from
// redisdocs.json on first use.
var redisKeySpecs = sync.OnceValue(func() map[string][]keySpec {
	out := map[string][]keySpec{}
	for name, d := range redisDocs() {
		if specs := decodeKeySpecs(d.info[6]); len(specs) > 0 {
			out[name] = specs
		}
	}
	return out
})

// decodeKeySpecs reads COMMAND INFO's key specifications. A specification of a kind it does not
// know is left out.
func decodeKeySpecs(r resp.Reply) []keySpec {
	var out []keySpec
	for _, m := range r.Elems {
		var ks keySpec
		for _, f := range field(m, "flags").Elems {
			ks.flags = append(ks.flags, f.Text())
		}
		bs, fk := field(m, "begin_search"), field(m, "find_keys")
		if field(bs, "type").Text() != "index" {
			continue
		}
		ks.index = int(field(field(bs, "spec"), "index").Int)
		spec := field(fk, "spec")
		switch field(fk, "type").Text() {
		case "range":
			ks.lastKey = int(field(spec, "lastkey").Int)
			ks.keyStep = int(field(spec, "keystep").Int)
			ks.limit = int(field(spec, "limit").Int)
		case "keynum":
			ks.keynum = true
			ks.keyNumIdx = int(field(spec, "keynumidx").Int)
			ks.firstKey = int(field(spec, "firstkey").Int)
			ks.keyStep = int(field(spec, "keystep").Int)
		default:
			continue
		}
		out = append(out, ks)
	}
	return out
}

// field returns the value of a map reply's field name (a zero Reply when it has none).
func field(m resp.Reply, name string) resp.Reply {
	for i := 0; i+1 < len(m.Elems); i += 2 {
		if m.Elems[i].Text() == name {
			return m.Elems[i+1]
		}
	}
	return resp.Reply{}
}

// keySpecsOf returns cmd's key specifications: Redis's for a command Redis has; for Vela's own,
// one made from its key positions, with the flags of a read (RO, access) or of a write (RW,
// access, update), since whether it reads the key first is not recorded.
func keySpecsOf(cmd *Command) []keySpec {
	if specs, ok := redisKeySpecs()[cmd.Name]; ok {
		return specs
	}
	if _, ok := redisDocs()[cmd.Name]; ok || cmd.FirstKey == 0 {
		return nil
	}
	ks := keySpec{index: cmd.FirstKey, keyStep: max(cmd.KeyStep, 1), flags: []string{"RO", "access"}}
	if cmd.Flags&FlagWrite != 0 {
		ks.flags = []string{"RW", "access", "update"}
	}
	if cmd.LastKey < 0 {
		ks.lastKey = cmd.LastKey
	} else {
		ks.lastKey = cmd.LastKey - cmd.FirstKey
	}
	return []keySpec{ks}
}

// keySpecsReply is COMMAND INFO's list of specs, for a command whose entry the table makes.
func keySpecsReply(specs []keySpec) resp.Reply {
	out := make([]resp.Reply, 0, len(specs))
	for _, ks := range specs {
		flags := make([]resp.Reply, len(ks.flags))
		for i, f := range ks.flags {
			flags[i] = resp.Status(f)
		}
		out = append(out, resp.Map([]resp.Reply{
			resp.BulkString("flags"), resp.Set(flags),
			resp.BulkString("begin_search"), resp.Map([]resp.Reply{
				resp.BulkString("type"), resp.BulkString("index"),
				resp.BulkString("spec"), resp.Map([]resp.Reply{resp.BulkString("index"), resp.Int(int64(ks.index))}),
			}),
			resp.BulkString("find_keys"), resp.Map([]resp.Reply{
				resp.BulkString("type"), resp.BulkString("range"),
				resp.BulkString("spec"), resp.Map([]resp.Reply{
					resp.BulkString("lastkey"), resp.Int(int64(ks.lastKey)),
					resp.BulkString("keystep"), resp.Int(int64(ks.keyStep)),
					resp.BulkString("limit"), resp.Int(int64(ks.limit)),
				}),
			}),
		}))
	}
	return resp.Set(out)
}

// keyRef is one key of a command line: its argument index and its flags.
type keyRef struct {
	pos   int
	flags []string
}

// findKeys finds the keys of args (the command line, name first) as Redis's
// getKeysFromCommandWithSpecs does: by the key specifications unless one has variable flags,
// falling back on the command's own rule (Redis's getkeys procedure) when a specification does
// not fit the arguments. ok is false when no key was found.
func findKeys(cmd *Command, specs []keySpec, args [][]byte) (keys []keyRef, ok bool) {
	variable := false
	for _, ks := range specs {
		for _, f := range ks.flags {
			variable = variable || f == variableFlags
		}
	}
	if !variable {
		if keys, ok := keysBySpecs(cmd, specs, args); ok {
			return keys, len(keys) > 0
		}
	}
	switch cmd.Name {
	case "set":
		return setKeys(args), true
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		keys := numKeysKeys(args)
		return keys, len(keys) > 0
	}
	return nil, false
}

// keysBySpecs is Redis's getKeysUsingKeySpecs: ok is false when a specification does not fit
// the arguments (a key past the end, a count that is not a number).
func keysBySpecs(cmd *Command, specs []keySpec, args [][]byte) ([]keyRef, bool) {
	var keys []keyRef
	argc := len(args)
	for _, ks := range specs {
		first, last := ks.index, 0
		if ks.keynum {
			if ks.keyNumIdx >= argc || first+ks.keyNumIdx >= argc {
				return nil, false
			}
			n, ok := redisnum.ParseInt(args[first+ks.keyNumIdx])
			if !ok || n < 0 || n > int64(argc) {
				return nil, false
			}
			first += ks.firstKey
			last = first + int(n) - 1
		} else {
			switch {
			case ks.lastKey >= 0:
				last = first + ks.lastKey
			case ks.limit == 0:
				last = argc + ks.lastKey
			default:
				last = first + ((argc-first)/ks.limit + ks.lastKey)
			}
		}
		if last >= argc || last < first || first >= argc {
			return nil, false
		}
		for i := first; i <= last; i += max(ks.keyStep, 1) {
			keys = append(keys, keyRef{pos: i, flags: ks.flags})
		}
	}
	return keys, true
}

// setKeys is Redis's setGetKeys: SET's key reads the old value with GET, and only overwrites it
// without. Vela's TAGS option comes last: its tags are not options.
func setKeys(args [][]byte) []keyRef {
	for _, a := range args[min(3, len(args)):] {
		if bytes.EqualFold(a, []byte("tags")) {
			break
		}
		if bytes.EqualFold(a, []byte("get")) {
			return []keyRef{{pos: 1, flags: []string{"RW", "access", "update"}}}
		}
	}
	return []keyRef{{pos: 1, flags: []string{"OW", "update"}}}
}

// numKeysKeys is Redis's evalGetKeys (genericGetKeys): the count is read as C's atoi would, and
// the keys it finds have no flags.
func numKeysKeys(args [][]byte) []keyRef {
	if len(args) < 3 {
		return nil
	}
	n := atoi(args[2])
	if n < 1 || n > len(args)-3 {
		return nil
	}
	keys := make([]keyRef, n)
	for i := range keys {
		keys[i] = keyRef{pos: 3 + i, flags: []string{}}
	}
	return keys
}

// atoi reads a leading decimal number as C's atoi does: leading blanks, an optional sign, digits
// up to the first other byte; 0 when there are none.
func atoi(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	n := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
		if n > 1<<31 {
			break // beyond any argument count
		}
	}
	if neg {
		return -n
	}
	return n
}

// commandGetKeys serves COMMAND GETKEYS and COMMAND GETKEYSANDFLAGS command [arg …].
func (n *Node) commandGetKeys(withFlags bool) Handler {
	return func(_ *Ctx, args [][]byte) (resp.Reply, error) {
		line := args[2:]
		cmd := n.table.Lookup(line[0])
		if cmd != nil && len(cmd.Subcommands) > 0 && len(line) > 1 {
			cmd = cmd.Subcommands[string(lowerInto(nil, line[1]))]
		}
		if cmd == nil {
			return resp.Reply{}, errGetKeysCommand
		}
		// Specs flagged not_key (shard channels) name no key: a command with only those has none.
		specs := slices.DeleteFunc(slices.Clone(keySpecsOf(cmd)), func(ks keySpec) bool {
			return slices.Contains(ks.flags, "not_key")
		})
		if len(specs) == 0 {
			return resp.Reply{}, errGetKeysNoKeys
		}
		if (cmd.Arity > 0 && cmd.Arity != len(line)) || len(line) < -cmd.Arity {
			return resp.Reply{}, errGetKeysArity
		}
		keys, ok := findKeys(cmd, specs, line)
		if !ok {
			if cmd.MovableKeys != nil { // Redis's "no mandatory keys": EVAL with no keys
				return resp.Array([]resp.Reply{}), nil
			}
			return resp.Reply{}, errGetKeysArgs
		}
		out := make([]resp.Reply, len(keys))
		for i, k := range keys {
			out[i] = resp.BulkString(string(line[k.pos]))
			if withFlags {
				flags := make([]resp.Reply, len(k.flags))
				for j, f := range k.flags {
					flags[j] = resp.Status(f)
				}
				out[i] = resp.Array([]resp.Reply{out[i], resp.Set(flags)})
			}
		}
		return resp.Array(out), nil
	}
}
