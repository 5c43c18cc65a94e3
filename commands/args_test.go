package commands

import (
	"strings"
	"testing"
)

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want uint64
		ok   bool
	}{
		{"zero", "0", 0, true},
		{"number", "1234", 1234, true},
		{"empty is zero", "", 0, true},
		{"plus", "+5", 5, true},
		{"minus wraps", "-1", 1<<64 - 1, true},
		{"minus zero", "-0", 0, true},
		{"max", "18446744073709551615", 1<<64 - 1, true},
		{"overflow", "18446744073709551616", 0, false},
		{"text after NUL ignored", "7\x00x", 7, true},
		{"leading space", " 1", 0, false},
		{"trailing space", "1 ", 0, false},
		{"sign only", "+", 0, false},
		{"two signs", "+-1", 0, false},
		{"hex", "0x10", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseCursor([]byte(tc.in))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ParseCursor(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		name, arg, word string
		want            bool
	}{
		{"same", "nx", "nx", true},
		{"upper", "NX", "nx", true},
		{"mixed", "KeEpTtL", "keepttl", true},
		{"longer", "nxx", "nx", false},
		{"shorter", "n", "nx", false},
		{"NUL ends the argument", "nx\x00junk", "nx", true},
		{"NUL inside", "n\x00", "nx", false},
		{"non-letter", "n[", "nx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := equalFold([]byte(tc.arg), tc.word); got != tc.want {
				t.Fatalf("equalFold(%q, %q) = %v", tc.arg, tc.word, got)
			}
		})
	}
}

func TestErrorTexts(t *testing.T) {
	long := strings.Repeat("a", 200)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown command", unknownCommand([][]byte{[]byte("foo"), []byte("a"), []byte("b")}),
			"ERR unknown command 'foo', with args beginning with: 'a' 'b' "},
		{"unknown command without args", unknownCommand([][]byte{[]byte("foo")}),
			"ERR unknown command 'foo', with args beginning with: "},
		{"unknown command cuts at NUL and maps CR LF", unknownCommand([][]byte{[]byte("f\r\no\x00x"), []byte("a\x00b"), []byte("c\n")}),
			"ERR unknown command 'f  o', with args beginning with: 'a' 'c ' "},
		{"unknown command stops after 128 bytes of args", unknownCommand([][]byte{[]byte("x"), []byte(long), []byte("b")}),
			"ERR unknown command 'x', with args beginning with: '" + long[:128] + "' "},
		{"unknown command name cut at 128", unknownCommand([][]byte{[]byte(long)}),
			"ERR unknown command '" + long[:128] + "', with args beginning with: "},
		{"unknown subcommand", unknownSubcommand("client", []byte("bad\r\nsub\x00x")),
			"ERR unknown subcommand 'bad  sub'. Try CLIENT HELP."},
		{"formatted error trims and maps", formatError("Unsupported option %s", []byte("x\r\ny\r\n")),
			"ERR Unsupported option x  y"},
		{"wrong arity", WrongArity("client|setname"), "ERR wrong number of arguments for 'client|setname' command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Error() != tc.want {
				t.Fatalf("got %q, want %q", tc.err.Error(), tc.want)
			}
		})
	}
}
