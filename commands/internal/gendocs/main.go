// Command gendocs captures what a real Redis 7 says of the commands Vela shares with it (COMMAND
// INFO's flags, key positions, ACL categories, tips and key specifications, and COMMAND DOCS'
// summary, history and argument specifications) and writes them to commands/redisdocs.json, so
// that Vela answers COMMAND INFO and COMMAND DOCS for those commands exactly as Redis does
// (redis-cli builds its hints from COMMAND DOCS).
//
// It starts a redis-server of its own on a free loopback port:
//
//	go generate ./commands    (runs: go run ./internal/gendocs -o redisdocs.json)
//
// Each reply is kept as a tree in JSON: a bulk string is a JSON string, an integer a number, an
// array a JSON array, and a status, map or set an object with one member "+", "%" or "~". A
// container command's subcommands are left out of its entry and captured under "parent|sub":
// Vela lists only the subcommands it has.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vela-cache/vela/internal/respclient"
)

// names are the commands of DESIGN.md §3 that Redis has, the transaction, scripting, slow log
// MEMORY USAGE, OBJECT and Pub/Sub commands, and the subcommands Vela serves.
const names = `ping echo quit select auth hello client command info role shutdown config time dbsize
	flushdb flushall get set setnx setex psetex getset getdel getex mget mset msetnx incr decr
	incrby decrby incrbyfloat append strlen del unlink exists touch type expire pexpire expireat
	pexpireat ttl pttl expiretime pexpiretime persist keys scan client|setname client|getname
	client|id client|info client|setinfo client|list client|kill client|help command|count
	command|docs command|info command|list command|help command|getkeys command|getkeysandflags
	config|get config|set config|resetstat config|rewrite config|help multi exec discard watch
	unwatch reset getrange substr setrange eval evalsha eval_ro script evalsha_ro script|load
	script|exists script|flush script|kill script|help slowlog slowlog|get slowlog|len
	slowlog|reset slowlog|help memory memory|usage memory|help memory|stats memory|doctor
	memory|malloc-stats memory|purge object object|encoding object|refcount object|idletime
	object|freq object|help latency latency|latest latency|history latency|reset
	latency|histogram latency|graph latency|doctor latency|help client|pause client|unpause
	client|unblock client|getredir client|trackinginfo client|caching client|tracking client|no-evict client|reply wait
	subscribe unsubscribe psubscribe punsubscribe publish pubsub pubsub|channels pubsub|numsub
	pubsub|numpat pubsub|help ssubscribe sunsubscribe spublish pubsub|shardchannels pubsub|shardnumsub
	monitor rename renamenx copy lcs dump restore move swapdb randomkey getbit setbit bitcount bitpos
	bitfield bitfield_ro bitop`

func main() {
	out := flag.String("o", "redisdocs.json", "file to write")
	server := flag.String("redis-server", "redis-server", "the redis-server binary to ask")
	flag.Parse()
	if err := run(*out, *server); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(out, server string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	var c *respclient.Conn
	for range 50 {
		if c, err = respclient.DialErr(fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	ask := func(args ...any) (respclient.Value, error) {
		v, _, err := c.Exec(respclient.Args(args...))
		if err == nil && v.IsError() {
			err = fmt.Errorf("%v: %s", args, v.Str)
		}
		return v, err
	}
	if _, err := ask("HELLO", "3"); err != nil {
		return err
	}
	version, err := ask("INFO", "server")
	if err != nil {
		return err
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n\"\": %q", "captured from redis_version "+field(version.Str, "redis_version"))
	for _, name := range strings.Fields(names) {
		info, err := ask("COMMAND", "INFO", name)
		if err != nil {
			return err
		}
		docs, err := ask("COMMAND", "DOCS", name)
		if err != nil {
			return err
		}
		if len(info.Elems) == 1 && info.Elems[0].Null {
			// Newer than this Redis (CLIENT SETINFO came in 7.2): Vela documents it itself.
			fmt.Fprintf(os.Stderr, "gendocs: this Redis does not know %s; left out\n", name)
			continue
		}
		if len(info.Elems) != 1 || len(info.Elems[0].Elems) != 10 || len(docs.Elems) != 2 {
			return fmt.Errorf("%s: unexpected replies %v %v", name, info, docs)
		}
		// COMMAND INFO without the name and arity (Vela's table has them) and the subcommands.
		entry := map[string]any{
			"info": encode(respclient.Value{Type: '*', Elems: info.Elems[0].Elems[2:9]}),
			"docs": encode(withoutKey(docs.Elems[1], "subcommands")),
		}
		line, err := json.Marshal(entry)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, ",\n%q: %s", name, line)
	}
	b.WriteString("\n}\n")
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// encode turns a reply into the JSON tree described in the package comment.
func encode(v respclient.Value) any {
	elems := func() []any {
		out := make([]any, len(v.Elems))
		for i, e := range v.Elems {
			out[i] = encode(e)
		}
		return out
	}
	switch v.Type {
	case '$':
		return v.Str
	case ':':
		return v.Int
	case '+':
		return map[string]any{"+": v.Str}
	case '*':
		return elems()
	case '%':
		return map[string]any{"%": elems()}
	case '~':
		return map[string]any{"~": elems()}
	}
	panic(fmt.Sprintf("gendocs: reply type %q has no encoding", v.Type))
}

// withoutKey returns the map m without the entry named key.
func withoutKey(m respclient.Value, key string) respclient.Value {
	out := m
	out.Elems = nil
	for i := 0; i+1 < len(m.Elems); i += 2 {
		if m.Elems[i].Text() != key {
			out.Elems = append(out.Elems, m.Elems[i], m.Elems[i+1])
		}
	}
	return out
}

// field reads one "name:value" line of an INFO reply.
func field(info, name string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	return "?"
}
