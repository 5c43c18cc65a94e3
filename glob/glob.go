// Package glob matches byte strings against Redis glob patterns, as KEYS, SCAN MATCH and
// CONFIG GET do.
//
// It is written out rather than taken from path.Match or a glob library because Redis's
// stringmatchlen differs from them in ways clients can see: '*' crosses '/', patterns are binary
// safe, ranges may be reversed ("[z-a]"), '\' escapes anywhere, and an unclosed '[' matches
// literally up to the end of the pattern.
package glob

// Match reports whether s matches pattern.
func Match(pattern, s []byte) bool {
	budget := 1 << 20 // bounds the backtracking of hostile patterns like "*a*a*a*a*b"
	return match(pattern, s, false, &budget)
}

// MatchString is Match for strings.
func MatchString(pattern, s string) bool { return Match([]byte(pattern), []byte(s)) }

// MatchFold is Match ignoring ASCII case, as CONFIG GET does.
func MatchFold(pattern, s []byte) bool {
	budget := 1 << 20
	return match(pattern, s, true, &budget)
}

func match(p, s []byte, fold bool, budget *int) bool {
	for len(p) > 0 {
		*budget--
		if *budget < 0 {
			return false
		}
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if match(p[1:], s[i:], fold, budget) {
					return true
				}
				if *budget < 0 {
					return false
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			p = p[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			matched := false
			for {
				if len(p) == 0 {
					break // unclosed class: Redis stops at the end of the pattern
				}
				if p[0] == '\\' && len(p) >= 2 {
					p = p[1:]
					if eq(p[0], s[0], fold) {
						matched = true
					}
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					c := s[0]
					if fold {
						lo, hi, c = lower(lo), lower(hi), lower(c)
					}
					if c >= lo && c <= hi {
						matched = true
					}
					p = p[2:]
				} else if eq(p[0], s[0], fold) {
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
			if len(s) == 0 || !eq(p[0], s[0], fold) {
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

func eq(a, b byte, fold bool) bool {
	if fold {
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
