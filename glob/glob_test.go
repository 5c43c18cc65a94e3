package glob

import (
	"bytes"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, s string
		want             bool
	}{
		{"literal", "abc", "abc", true},
		{"literal differs", "abc", "abd", false},
		{"star", "a*", "abc", true},
		{"star crosses slash", "a*c", "a/b/c", true},
		{"star alone", "*", "anything", true},
		{"star never matches empty", "*", "", false},
		{"double star never matches empty", "**", "", false},
		{"empty pattern matches empty", "", "", true},
		{"empty pattern", "", "a", false},
		{"trailing stars", "ab**", "ab", true},
		{"question", "a?c", "abc", true},
		{"question needs a byte", "a?", "a", false},
		{"class", "[abc]x", "bx", true},
		{"class miss", "[abc]x", "dx", false},
		{"negated class", "[^abc]x", "dx", true},
		{"range", "key:[0-9]", "key:7", true},
		{"reversed range", "[z-a]", "m", true},
		{"dash at end of pattern is literal", "[a-", "a", true},
		{"escaped in class", "[\\]]", "]", true},
		{"unclosed class", "[ab", "a", true},
		{"unclosed empty class", "[", "a", false},
		{"escape", "a\\*", "a*", true},
		{"escape literal", "a\\*", "ab", false},
		{"trailing backslash", "a\\", "a\\", true},
		{"signed char range", "[a-\xff]", "\x80", false},
		{"signed char range includes", "[\xff-a]", "\xff", true},
		{"binary", "k\x00*", "k\x00z", true},
		{"star then class", "*[0-9]", "abc5", true},
		{"many stars", "a*b*c*d", "aXbYcZd", true},
		{"many stars miss", "a*b*c*d", "aXbYcZe", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MatchString(tc.pattern, tc.s); got != tc.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
			}
		})
	}
}

func TestMatchFold(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, s string
		want             bool
	}{
		{"letters", "MAX*", "maxclients", true},
		{"range", "[A-Z]x", "qX", true},
		{"escaped byte stays exact", "[\\A]", "a", false},
		{"literal", "TiMeOuT", "timeout", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MatchFold([]byte(tc.pattern), []byte(tc.s)); got != tc.want {
				t.Fatalf("MatchFold(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
			}
		})
	}
}

// TestHostilePatterns: patterns built to backtrack exponentially finish quickly, and nesting
// deeper than the limit matches nothing instead of exhausting the stack.
func TestHostilePatterns(t *testing.T) {
	s := []byte(strings.Repeat("a", 10000))
	if Match([]byte(strings.Repeat("*a", 2000)+"b"), s) {
		t.Fatal("hostile pattern matched")
	}
	if Match([]byte(strings.Repeat("a*", maxNesting+10)), []byte(strings.Repeat("a", maxNesting+10))) {
		t.Fatal("pattern nested past the limit matched")
	}
	if !Match([]byte(strings.Repeat("a*", 100)), []byte(strings.Repeat("a", 200))) {
		t.Fatal("pattern within the limit did not match")
	}
}

// reference is stringmatchlen without the skip-longer-matches shortcut and the nesting limit:
// exponential, but obviously the original, for comparing on short inputs.
func reference(p, s []byte) bool {
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if reference(p[1:], s) {
					return true
				}
				s = s[1:]
			}
			return false
		case '?':
			s, p = s[1:], p[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			m := false
			for len(p) > 0 && !(p[0] == ']') {
				switch {
				case len(p) >= 2 && p[0] == '\\':
					p = p[1:]
					m = m || p[0] == s[0]
				case len(p) >= 3 && p[1] == '-':
					lo, hi, c := int(int8(p[0])), int(int8(p[2])), int(int8(s[0]))
					if lo > hi {
						lo, hi = hi, lo
					}
					m = m || (c >= lo && c <= hi)
					p = p[2:]
				default:
					m = m || p[0] == s[0]
				}
				p = p[1:]
			}
			if len(p) > 0 {
				p = p[1:]
			}
			if m == not {
				return false
			}
			s = s[1:]
		default:
			if p[0] == '\\' && len(p) >= 2 {
				p = p[1:]
			}
			if p[0] != s[0] {
				return false
			}
			s, p = s[1:], p[1:]
		}
		if len(s) == 0 {
			p = bytes.TrimLeft(p, "*")
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// FuzzMatch compares Match with the plain recursive algorithm on short inputs and checks that
// long ones terminate.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"*", "abc"}, {"a*b?c", "axxbyc"}, {"[^a-c]*", "dog"}, {"\\[x]", "[x]"},
		{"*[", "a["}, {"[\\", "\\"}, {"**a", "a"}, {"[\xff-a]", "\x80"}, {"", ""}} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, p, s []byte) {
		got := Match(p, s)
		if len(p) <= 12 && len(s) <= 24 {
			if want := reference(p, s); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference says %v", p, s, got, want)
			}
		}
		if !bytes.ContainsAny(p, "*?[\\") && got != bytes.Equal(p, s) {
			t.Fatalf("literal pattern %q vs %q: %v", p, s, got)
		}
		MatchFold(p, s)
	})
}
