package respclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vela-cache/vela/resp"
)

// Value is one parsed reply. Type is the RESP type byte the server sent, so RESP2 and RESP3
// replies of the same meaning stay distinguishable ("$-1" is Type '$' with Null, "_" is Type '_').
type Value struct {
	// Type is the RESP type byte: '+' status, '-' error, ':' integer, '$' bulk, '*' array,
	// '%' map, '~' set, '>' push, '|' attribute, ',' double, '#' boolean, '_' null,
	// '=' verbatim, '(' big number, '!' blob error.
	Type byte
	// Str is the text of a status, error, bulk, verbatim (without its format), double, big
	// number or blob error.
	Str string
	// Format is a verbatim string's three-letter format ("txt").
	Format string
	// Int is an integer's value, or a boolean's (1 or 0).
	Int int64
	// Null is set for "$-1", "*-1" and "_".
	Null bool
	// Elems are the elements of an array, set or push; a map's or attribute's keys and values
	// alternate.
	Elems []Value
}

// IsError reports whether v is an error reply ('-' or '!').
func (v Value) IsError() bool { return v.Type == '-' || v.Type == '!' }

// IsNull reports whether v is any null ($-1, *-1, _).
func (v Value) IsNull() bool { return v.Null }

// Text returns the string content of a status, error, bulk, verbatim or double reply, or the
// decimal form of an integer.
func (v Value) Text() string {
	if v.Type == ':' {
		return strconv.FormatInt(v.Int, 10)
	}
	return v.Str
}

// Map returns a map or flat key/value array reply as a Go map keyed by the keys' text.
func (v Value) Map() map[string]Value {
	m := make(map[string]Value, len(v.Elems)/2)
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[v.Elems[i].Text()] = v.Elems[i+1]
	}
	return m
}

// String renders v compactly for test failure messages, quoting strings Go-style so that
// binary content is visible.
func (v Value) String() string {
	var b strings.Builder
	v.render(&b)
	return b.String()
}

func (v Value) render(b *strings.Builder) {
	switch v.Type {
	case ':':
		fmt.Fprintf(b, "(integer) %d", v.Int)
	case '#':
		fmt.Fprintf(b, "(boolean) %t", v.Int != 0)
	case '_':
		b.WriteString("(null)")
	case '+':
		b.WriteString("+" + strconv.Quote(v.Str))
	case '-', '!':
		b.WriteString("(error) " + strconv.Quote(v.Str))
	case ',', '(':
		b.WriteString(string(v.Type) + v.Str)
	case '=':
		b.WriteString("(verbatim " + v.Format + ") " + strconv.Quote(v.Str))
	case '$':
		if v.Null {
			b.WriteString("(nil)")
			return
		}
		b.WriteString(strconv.Quote(v.Str))
	default:
		if v.Null {
			b.WriteString("(nil array)")
			return
		}
		b.WriteByte(v.Type)
		b.WriteByte('[')
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteString(", ")
			}
			e.render(b)
		}
		b.WriteByte(']')
	}
}

// maxReplyLen bounds one bulk or aggregate a test client accepts, so that a server bug cannot
// make a test allocate without limit.
const maxReplyLen = 1 << 30

// errProtocol is returned for a reply the client cannot parse.
var errProtocol = errors.New("respclient: malformed reply")

// ReadValue reads one reply from r and returns it with the exact bytes it was sent as.
func ReadValue(r *bufio.Reader) (Value, []byte, error) {
	var raw bytes.Buffer
	v, err := readValue(r, &raw, 0)
	return v, raw.Bytes(), err
}

func readLine(r *bufio.Reader, raw *bytes.Buffer) (string, error) {
	line, err := r.ReadString('\n')
	raw.WriteString(line)
	if err != nil {
		if errors.Is(err, io.EOF) && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("%w: line %q not ended by CRLF", errProtocol, line)
	}
	return line[:len(line)-2], nil
}

func readValue(r *bufio.Reader, raw *bytes.Buffer, depth int) (Value, error) {
	if depth > 64 {
		return Value{}, fmt.Errorf("%w: nested too deeply", errProtocol)
	}
	line, err := readLine(r, raw)
	if err != nil {
		return Value{}, err
	}
	if line == "" {
		return Value{}, fmt.Errorf("%w: empty line", errProtocol)
	}
	v := Value{Type: line[0]}
	body := line[1:]
	switch v.Type {
	case '+', '-', ',', '(':
		v.Str = body
	case ':':
		if v.Int, err = strconv.ParseInt(body, 10, 64); err != nil {
			return v, fmt.Errorf("%w: integer %q", errProtocol, body)
		}
	case '#':
		switch body {
		case "t":
			v.Int = 1
		case "f":
		default:
			return v, fmt.Errorf("%w: boolean %q", errProtocol, body)
		}
	case '_':
		v.Null = true
	case '$', '=', '!':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxReplyLen {
			return v, fmt.Errorf("%w: length %q", errProtocol, body)
		}
		if n == -1 {
			v.Null = true
			return v, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			raw.Write(buf)
			return v, io.ErrUnexpectedEOF
		}
		raw.Write(buf)
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return v, fmt.Errorf("%w: bulk not ended by CRLF", errProtocol)
		}
		v.Str = string(buf[:n])
		if v.Type == '=' {
			if len(v.Str) < 4 || v.Str[3] != ':' {
				return v, fmt.Errorf("%w: verbatim %q", errProtocol, v.Str)
			}
			v.Format, v.Str = v.Str[:3], v.Str[4:]
		}
	case '*', '~', '>', '%', '|':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxReplyLen {
			return v, fmt.Errorf("%w: length %q", errProtocol, body)
		}
		if n == -1 {
			v.Null = true
			return v, nil
		}
		if v.Type == '%' || v.Type == '|' {
			n *= 2
		}
		v.Elems = make([]Value, 0, min(n, 1024))
		for i := 0; i < n; i++ {
			e, err := readValue(r, raw, depth+1)
			if err != nil {
				return v, err
			}
			v.Elems = append(v.Elems, e)
		}
	default:
		return v, fmt.Errorf("%w: type byte %q", errProtocol, v.Type)
	}
	return v, nil
}

// AppendCommand appends args encoded as a RESP multibulk request.
func AppendCommand(dst []byte, args ...[]byte) []byte { return resp.AppendCommand(dst, args...) }

// Args converts strings, byte slices and integers to command arguments.
func Args(args ...any) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		switch x := a.(type) {
		case string:
			out[i] = []byte(x)
		case []byte:
			out[i] = x
		case int:
			out[i] = strconv.AppendInt(nil, int64(x), 10)
		case int64:
			out[i] = strconv.AppendInt(nil, x, 10)
		case float64:
			out[i] = strconv.AppendFloat(nil, x, 'g', -1, 64)
		default:
			out[i] = []byte(fmt.Sprint(x))
		}
	}
	return out
}
