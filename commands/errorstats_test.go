package commands

import (
	"fmt"
	"strings"
	"testing"
)

// TestErrorCode: an error is filed under its first word when the word ends within Redis's
// 32-character search (the reply's '-' counted), else under ERR.
func TestErrorCode(t *testing.T) {
	for text, want := range map[string]string{
		"ERR wrong number of arguments":       "ERR",
		"WRONGTYPE Operation against a key":   "WRONGTYPE",
		"NOSCRIPT No matching script.":        "NOSCRIPT",
		"nospace":                             "ERR",
		"":                                    "ERR",
		"-DASH x":                             "-DASH",
		strings.Repeat("A", 30) + " x":        strings.Repeat("A", 30),
		strings.Repeat("B", 31) + " x":        "ERR",
		"EXECABORT Transaction discarded ...": "EXECABORT",
	} {
		if got := errorCode(text); got != want {
			t.Errorf("errorCode(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestErrorCountsBounded: a client making up codes (a script's {err=…}) cannot grow errorstats
// past maxErrorCodes; every error still counts in the total, and known codes keep counting.
func TestErrorCountsBounded(t *testing.T) {
	var e errorCounts
	for i := range maxErrorCodes + 50 {
		e.add(fmt.Sprintf("E%d x", i))
	}
	e.add("E0 again")
	if e.Total() != maxErrorCodes+51 {
		t.Fatalf("total %d, want %d", e.Total(), maxErrorCodes+51)
	}
	lines := e.lines()
	if len(lines) != maxErrorCodes {
		t.Fatalf("%d codes kept, want %d", len(lines), maxErrorCodes)
	}
	if lines[0] != "errorstat_E0:count=2" {
		t.Fatalf("first line %q", lines[0])
	}
	e.reset()
	if e.Total() != 0 || len(e.lines()) != 0 {
		t.Fatalf("after reset: %d, %v", e.Total(), e.lines())
	}
	e.add("E1 once more")
	if e.Total() != 1 || fmt.Sprint(e.lines()) != "[errorstat_E1:count=1]" || e.total != maxErrorCodes+52 || e.codes["E1"] != 2 {
		t.Fatalf("after reset and one more: %d %v (since start %d, E1 %d)", e.Total(), e.lines(), e.total, e.codes["E1"])
	}
}
