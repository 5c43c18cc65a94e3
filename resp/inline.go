package resp

// splitInline splits an inline command line into arguments the way Redis's sdssplitargs does:
// arguments are separated by spaces; "double quotes" understand \n \r \t \b \a \\ \" and \xHH;
// 'single quotes' understand \'; a closing quote must be followed by a space or the end of the
// line. Arguments without escapes alias line; unescaped ones are built in scratch. It reports
// false for unbalanced quotes.
func splitInline(line []byte, args [][]byte, scratch []byte) ([][]byte, bool) {
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, true
		}
		switch line[i] {
		case '"', '\'':
			quote := line[i]
			i++
			start := len(scratch)
			closed := false
			for i < len(line) {
				c := line[i]
				switch {
				case quote == '"' && c == '\\' && i+3 < len(line) && line[i+1] == 'x' &&
					isHex(line[i+2]) && isHex(line[i+3]):
					scratch = append(scratch, unhex(line[i+2])<<4|unhex(line[i+3]))
					i += 4
					continue
				case quote == '"' && c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					default:
						c = line[i]
					}
				case quote == '\'' && c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					c = '\''
				case c == quote:
					closed = true
				}
				i++
				if closed {
					break
				}
				scratch = append(scratch, c)
			}
			if !closed || (i < len(line) && !isSpace(line[i])) {
				return args, false
			}
			// scratch may move as it grows, so arguments are sliced from it only at the end of
			// each quoted argument; earlier ones stay valid because append copies on growth.
			args = append(args, scratch[start:len(scratch):len(scratch)])
		default:
			start := i
			for i < len(line) && !isSpace(line[i]) {
				i++
			}
			args = append(args, line[start:i:i])
		}
	}
}

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
