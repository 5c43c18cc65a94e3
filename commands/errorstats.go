package commands

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// errorCounts are INFO's total_error_replies and errorstats: every error a command answered,
// counted once where it was made, by its code (the reply's first word), as Redis's
// afterErrorReply counts them. An error a script passes on from a command it called was
// counted when the command answered it (script.Runner.Run). The counts never fall, for
// /metrics; CONFIG RESETSTAT sets a baseline INFO counts from.
type errorCounts struct {
	mu        sync.Mutex
	total     uint64
	codes     map[string]uint64
	baseTotal uint64            // total at the last reset
	base      map[string]uint64 // codes at the last reset
}

// maxErrorCodes bounds how many codes errorstats keeps: a script can make up any number of them
// ({err="X1 …"}). Errors with a code beyond the first maxErrorCodes are counted in the total only.
const maxErrorCodes = 128

// errorCode is the code Redis files an error reply's text under: its first word, when it ends
// within Redis's 32-character search (which counts the reply's leading '-'), else ERR.
func errorCode(text string) string {
	if i := strings.IndexByte(text[:min(len(text), 31)], ' '); i >= 0 {
		return text[:i]
	}
	return "ERR"
}

// add counts an error reply with the given text.
func (e *errorCounts) add(text string) {
	code := errorCode(text)
	e.mu.Lock()
	e.total++
	if e.codes == nil {
		e.codes = map[string]uint64{}
	}
	if _, ok := e.codes[code]; ok || len(e.codes) < maxErrorCodes {
		e.codes[code]++
	}
	e.mu.Unlock()
}

// Total is total_error_replies: the errors since the last reset.
func (e *errorCounts) Total() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total - e.baseTotal
}

// lines are INFO's errorstats section: one line per code with errors since the last reset, in
// byte order as Redis's radix tree lists them.
func (e *errorCounts) lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	codes := make([]string, 0, len(e.codes))
	for code, n := range e.codes {
		if n > e.base[code] {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	out := make([]string, len(codes))
	for i, code := range codes {
		out[i] = fmt.Sprintf("errorstat_%s:count=%d", code, e.codes[code]-e.base[code])
	}
	return out
}

// reset makes INFO count from now (CONFIG RESETSTAT).
func (e *errorCounts) reset() {
	e.mu.Lock()
	e.baseTotal = e.total
	e.base = make(map[string]uint64, len(e.codes))
	for code, n := range e.codes {
		e.base[code] = n
	}
	e.mu.Unlock()
}

// CountErrorReply counts an error reply answered outside any command (a protocol error) in
// INFO's total_error_replies and errorstats, as Redis counts it.
func (n *Node) CountErrorReply(text string) { n.errs.add(text) }

// ErrorReplies calls fn with every error code and the errors answered under it since the node
// started (CONFIG RESETSTAT aside), for /metrics, and returns the total.
func (n *Node) ErrorReplies(fn func(code string, count uint64)) uint64 {
	e := &n.errs
	e.mu.Lock()
	defer e.mu.Unlock()
	for code, c := range e.codes {
		fn(code, c)
	}
	return e.total
}
