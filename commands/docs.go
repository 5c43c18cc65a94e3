package commands

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/vela-cache/vela/resp"
)

//go:generate go run ./internal/gendocs -o redisdocs.json

// redisDocsJSON is what Redis 7 says of the commands Vela shares with it, captured from a real
// redis-server by internal/gendocs; its package comment describes the encoding.
//
//go:embed redisdocs.json
var redisDocsJSON []byte

// redisDoc is one command's captured description.
type redisDoc struct {
	// info is COMMAND INFO's entry from its flags to its key specifications (elements 3–9):
	// flags, first key, last key, step, ACL categories, tips, key specifications.
	info []resp.Reply
	// docs is COMMAND DOCS' map for the command, without its subcommands.
	docs resp.Reply
}

// redisDocs decodes redisdocs.json once, on the first COMMAND INFO or DOCS.
var redisDocs = sync.OnceValue(func() map[string]redisDoc {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(redisDocsJSON, &raw); err != nil {
		panic("commands: redisdocs.json: " + err.Error()) // embedded at build time: a build defect
	}
	delete(raw, "") // the note saying which Redis the file came from
	out := make(map[string]redisDoc, len(raw))
	for name, data := range raw {
		var e struct{ Info, Docs json.RawMessage }
		if err := json.Unmarshal(data, &e); err != nil {
			panic(fmt.Sprintf("commands: redisdocs.json: %s: %v", name, err))
		}
		info, err := decodeReply(e.Info)
		if err != nil || info.Kind != resp.KindArray || len(info.Elems) != 7 {
			panic(fmt.Sprintf("commands: redisdocs.json: info of %s: %v", name, err))
		}
		docs, err := decodeReply(e.Docs)
		if err != nil || docs.Kind != resp.KindMap {
			panic(fmt.Sprintf("commands: redisdocs.json: docs of %s: %v", name, err))
		}
		out[name] = redisDoc{info: info.Elems, docs: docs}
	}
	return out
})

// decodeReply turns one JSON tree of redisdocs.json back into the reply it was captured from.
func decodeReply(data []byte) (resp.Reply, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return resp.Reply{}, err
	}
	return replyOf(v)
}

func replyOf(v any) (resp.Reply, error) {
	list := func(v any) ([]resp.Reply, error) {
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("expected a list, got %T", v)
		}
		out := make([]resp.Reply, len(items))
		for i, item := range items {
			r, err := replyOf(item)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	switch v := v.(type) {
	case string:
		return resp.BulkString(v), nil
	case json.Number:
		n, err := v.Int64()
		return resp.Int(n), err
	case []any:
		elems, err := list(v)
		return resp.Array(elems), err
	case map[string]any:
		if s, ok := v["+"].(string); ok && len(v) == 1 {
			return resp.Status(s), nil
		}
		if items, ok := v["%"]; ok && len(v) == 1 {
			elems, err := list(items)
			return resp.Map(elems), err
		}
		if items, ok := v["~"]; ok && len(v) == 1 {
			elems, err := list(items)
			return resp.Set(elems), err
		}
	}
	return resp.Reply{}, fmt.Errorf("no reply is encoded as %v", v)
}

// Arg documents one argument of a command for COMMAND DOCS, from which redis-cli shows its hints
// as the user types. Commands that Redis has take their documentation from Redis; Vela's own
// commands give theirs with Args.
type Arg struct {
	Name string
	// Type is one of Redis's argument types: "key", "string", "integer", "double", "pattern",
	// "unix-time", "pure-token", "oneof" (one of Args) or "block" (Args in a row).
	Type string
	// Token is the keyword that introduces the argument ("TIMEOUT"), if it has one.
	Token string
	// Optional and Multiple are Redis's "optional" and "multiple" flags.
	Optional, Multiple bool
	// Args are the members of a oneof or block.
	Args []Arg
}

// reply is the argument's COMMAND DOCS map, with Redis's fields in Redis's order.
func (a Arg) reply() resp.Reply {
	m := []resp.Reply{resp.BulkString("name"), resp.BulkString(a.Name), resp.BulkString("type"), resp.BulkString(a.Type)}
	if a.Token != "" {
		m = append(m, resp.BulkString("token"), resp.BulkString(a.Token))
	}
	var flags []resp.Reply
	if a.Optional {
		flags = append(flags, resp.Status("optional"))
	}
	if a.Multiple {
		flags = append(flags, resp.Status("multiple"))
	}
	if flags != nil {
		m = append(m, resp.BulkString("flags"), resp.Set(flags))
	}
	if a.Args != nil {
		m = append(m, resp.BulkString("arguments"), argsReply(a.Args))
	}
	return resp.Map(m)
}

func argsReply(args []Arg) resp.Reply {
	out := make([]resp.Reply, len(args))
	for i, a := range args {
		out[i] = a.reply()
	}
	return resp.Array(out)
}
