package resp

import "bytes"

// splitInline splits an inline command line into arguments exactly as Redis's sdssplitargs
// does. The line is read as a C string (it ends at the first NUL byte). Arguments are separated
// by blanks; a double quote opens a string that understands \n \r \t \b \a, \xHH and any other
// escaped byte; a single quote opens one where only \' is special; a quote may start in the
// middle of an argument (foo"bar baz" is one argument), but a closing quote must be followed by
// a blank or the end of the line. It reports false for an unterminated quote or a closing quote
// followed by something else. The arguments are built in scratch and alias it.
func splitInline(line []byte, args [][]byte, scratch []byte) ([][]byte, []byte, bool) {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	at := func(i int) byte { // the C string's byte at i, NUL past the end
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			return args, scratch, true
		}
		start := len(scratch)
		inDouble, inSingle, done := false, false, false
		for !done {
			c := at(p)
			switch {
			case inDouble:
				switch {
				case c == '\\' && at(p+1) == 'x' && isHex(at(p+2)) && isHex(at(p+3)):
					scratch = append(scratch, unhex(at(p+2))<<4|unhex(at(p+3)))
					p += 3
				case c == '\\' && at(p+1) != 0:
					p++
					switch e := line[p]; e {
					case 'n':
						scratch = append(scratch, '\n')
					case 'r':
						scratch = append(scratch, '\r')
					case 't':
						scratch = append(scratch, '\t')
					case 'b':
						scratch = append(scratch, '\b')
					case 'a':
						scratch = append(scratch, '\a')
					default:
						scratch = append(scratch, e)
					}
				case c == '"':
					if next := at(p + 1); next != 0 && !isSpace(next) {
						return args, scratch, false
					}
					done = true
				case c == 0:
					return args, scratch, false // unterminated quotes
				default:
					scratch = append(scratch, c)
				}
			case inSingle:
				switch {
				case c == '\\' && at(p+1) == '\'':
					p++
					scratch = append(scratch, '\'')
				case c == '\'':
					if next := at(p + 1); next != 0 && !isSpace(next) {
						return args, scratch, false
					}
					done = true
				case c == 0:
					return args, scratch, false
				default:
					scratch = append(scratch, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0: // not \v or \f: those only separate leading blanks
					done = true
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					scratch = append(scratch, c)
				}
			}
			if p < len(line) {
				p++
			}
		}
		// scratch may move as it grows; an argument sliced from an earlier array stays valid
		// because append copies and never writes to the old one.
		args = append(args, scratch[start:len(scratch):len(scratch)])
	}
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
