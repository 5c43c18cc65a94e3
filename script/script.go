// Package script runs Redis's Lua scripts: the scripts EVAL and EVALSHA send, in the Lua 5.1
// dialect Redis embeds (gopher-lua here), with the library Redis gives them (redis.call,
// redis.pcall, redis.error_reply, redis.status_reply, redis.sha1hex, redis.log…) and Redis 7's
// conversions between Lua values and replies.
//
// The package knows nothing of commands or stores: a script's redis.call goes to a Caller, which
// the command layer implements (it checks the command, runs it and returns its reply). Isolation
// is the caller's too: Run only runs the script.
package script

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// chunkName names every script in Lua's messages ("user_script:3: …"), as Redis does.
const chunkName = "user_script"

// Script is one compiled script.
type Script struct {
	// SHA is the hex SHA1 of the body, the script's name for EVALSHA.
	SHA   string
	body  string
	proto *lua.FunctionProto
}

// Body returns the script's source.
func (s *Script) Body() string { return s.body }

// Cache holds the scripts compiled so far, by SHA1, as Redis's script cache does: EVAL adds its
// script, SCRIPT LOAD adds one without running it, SCRIPT FLUSH empties it. It is safe for
// concurrent use.
type Cache struct {
	mu      sync.RWMutex
	scripts map[string]*Script
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{scripts: map[string]*Script{}} }

// SHA1Hex returns the hex SHA1 of body, a script's name.
func SHA1Hex(body []byte) string {
	sum := sha1.Sum(body)
	return hex.EncodeToString(sum[:])
}

// Load compiles body, keeps it and returns it; a body loaded before is not compiled again. A
// body that does not compile gets Redis's "Error compiling script" error.
func (c *Cache) Load(body []byte) (*Script, error) {
	sha := SHA1Hex(body)
	if s := c.Get(sha); s != nil {
		return s, nil
	}
	chunk, err := parse.Parse(strings.NewReader(string(body)), chunkName)
	if err != nil {
		return nil, compileError(err)
	}
	proto, err := lua.Compile(chunk, chunkName)
	if err != nil {
		return nil, compileError(err)
	}
	s := &Script{SHA: sha, body: string(body), proto: proto}
	c.mu.Lock()
	if old := c.scripts[sha]; old != nil {
		s = old
	} else {
		c.scripts[sha] = s
	}
	c.mu.Unlock()
	return s, nil
}

// compileError turns a parser's error into Redis's reply text. The message after the position
// is gopher-lua's, which words some errors differently from Lua's own parser.
func compileError(err error) error {
	msg := err.Error()
	var pe *parse.Error
	if errors.As(err, &pe) {
		if pe.Pos.Line == parse.EOF {
			msg = "user_script: " + pe.Message + " at EOF"
		} else {
			msg = "user_script:" + strconv.Itoa(pe.Pos.Line) + ": " + pe.Message + " near '" + pe.Token + "'"
		}
	}
	return Error("ERR Error compiling script (new function): " + strings.TrimSpace(msg))
}

// Get returns the script named sha (hex, any case), or nil.
func (c *Cache) Get(sha string) *Script {
	if len(sha) != 40 {
		return nil
	}
	c.mu.RLock()
	s := c.scripts[sha]
	c.mu.RUnlock()
	if s == nil && strings.ContainsAny(sha, "ABCDEF") {
		return c.Get(strings.ToLower(sha))
	}
	return s
}

// Exists reports whether the script named sha is cached.
func (c *Cache) Exists(sha string) bool { return c.Get(sha) != nil }

// Flush empties the cache.
func (c *Cache) Flush() {
	c.mu.Lock()
	c.scripts = map[string]*Script{}
	c.mu.Unlock()
}

// Len returns how many scripts are cached.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.scripts)
}

// Bytes returns the length of the cached scripts' bodies and names (INFO
// used_memory_scripts_eval); their compiled forms are not counted.
func (c *Cache) Bytes() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var n int64
	for sha, s := range c.scripts {
		n += int64(len(sha) + len(s.body))
	}
	return n
}

// Error is an error whose text is the reply a client gets, as Redis words it.
type Error string

func (e Error) Error() string { return string(e) }
