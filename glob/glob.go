// Package glob matches byte strings against Redis glob patterns, as KEYS, SCAN MATCH and
// CONFIG GET do.
//
// It is a port of Redis's stringmatchlen rather than path.Match or a glob library, because
// Redis's rules differ from them in ways clients can see: '*' crosses '/', patterns are binary
// safe, ranges may be reversed ("[z-a]") and compare bytes as C's signed char does, '\' escapes
// anywhere, an unclosed '[' never matches, and a pattern never matches the empty string unless
// it is empty itself.
//
// Like Redis 7.2.6 and later (and unlike 7.0.15, which recurses without bound and can crash),
// a pattern nested more than 1000 '*' deep matches nothing, and a failed '*' stops the search
// for longer matches of the '*'s before it, so matching takes polynomial time.
package glob

// maxNesting bounds the recursion of '*' (Redis's protection against abusive patterns).
const maxNesting = 1000

// Match reports whether s matches pattern.
func Match(pattern, s []byte) bool {
	skip := false
	return match(pattern, s, false, &skip, 0)
}

// MatchString is Match for strings.
func MatchString(pattern, s string) bool { return Match([]byte(pattern), []byte(s)) }

// MatchFold is Match ignoring ASCII case, as CONFIG GET does.
func MatchFold(pattern, s []byte) bool {
	skip := false
	return match(pattern, s, true, &skip, 0)
}

func match(p, s []byte, nocase bool, skipLonger *bool, nesting int) bool {
	if nesting > maxNesting {
		return false
	}
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
				if match(p[1:], s, nocase, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			// Nothing after this '*' matches anywhere in the rest of s, so no longer match of
			// an earlier '*' can help either.
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
			p = p[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			matched := false
			for {
				if len(p) >= 2 && p[0] == '\\' {
					p = p[1:]
					if p[0] == s[0] { // an escaped byte compares exactly, even in MatchFold
						matched = true
					}
				} else if len(p) == 0 {
					break // unclosed class: the pattern ends here
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					// Redis reads the bytes as C's signed char: [a-\xff] is [\xff-a].
					lo, hi, c := int(int8(p[0])), int(int8(p[2])), int(int8(s[0]))
					if lo > hi {
						lo, hi = hi, lo
					}
					if nocase {
						lo, hi, c = lowerInt(lo), lowerInt(hi), lowerInt(c)
					}
					if c >= lo && c <= hi {
						matched = true
					}
					p = p[2:]
				} else if eq(p[0], s[0], nocase) {
					matched = true
				}
				p = p[1:]
			}
			if len(p) > 0 {
				p = p[1:] // the ']'
			}
			if not {
				matched = !matched
			}
			if !matched {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if !eq(p[0], s[0], nocase) {
				return false
			}
			s = s[1:]
			p = p[1:]
		}
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

func eq(a, b byte, nocase bool) bool {
	if nocase {
		return lower(a) == lower(b)
	}
	return a == b
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func lowerInt(c int) int {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
