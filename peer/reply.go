package peer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// errBadReply means the peer sent something that is not RESP; the connection is dropped.
var errBadReply = errors.New("peer: malformed reply")

// Limits on what a peer reply may make this node allocate.
const (
	maxBulk     = 1 << 30 // one string (proto_max_bulk_len can be at most this much on the peer)
	maxElements = 1 << 24 // one aggregate
	maxDepth    = 16      // nesting
)

// readReply parses one RESP2 or RESP3 reply. The returned reply owns its bytes.
func readReply(br *bufio.Reader, depth int) (resp.Reply, error) {
	if depth > maxDepth {
		return resp.Reply{}, errBadReply
	}
	line, err := readLine(br)
	if err != nil {
		return resp.Reply{}, err
	}
	if len(line) == 0 {
		return resp.Reply{}, errBadReply
	}
	body := line[1:]
	switch line[0] {
	case '+':
		if string(body) == "OK" {
			return resp.OK, nil // the common case, without allocating
		}
		return resp.Status(string(body)), nil
	case '-', '!':
		if line[0] == '!' {
			b, err := readBulk(br, body)
			return resp.Error(string(b)), err
		}
		return resp.Error(string(body)), nil
	case ':':
		n, ok := redisnum.ParseInt(body)
		if !ok {
			return resp.Reply{}, errBadReply
		}
		return resp.Int(n), nil
	case '(': // big number: passed on as a bulk string, as RESP2 does
		return resp.BulkString(string(body)), nil
	case ',':
		f, err := strconv.ParseFloat(string(body), 64)
		if err != nil {
			return resp.Reply{}, errBadReply
		}
		return resp.Double(f), nil
	case '#':
		return resp.Bool(len(body) == 1 && body[0] == 't'), nil
	case '_':
		return resp.Nil, nil
	case '$', '=':
		n, ok := redisnum.ParseInt(body)
		if ok && n == -1 {
			return resp.Nil, nil
		}
		b, err := readBulk(br, body)
		if err != nil {
			return resp.Reply{}, err
		}
		if line[0] == '=' {
			if len(b) >= 4 {
				b = b[4:] // "txt:"
			}
			return resp.Verbatim(string(b)), nil
		}
		return resp.Bulk(b), nil
	case '*', '%', '~', '>', '|':
		n, ok := redisnum.ParseInt(body)
		if !ok || n < -1 || n > maxElements {
			return resp.Reply{}, errBadReply
		}
		if n == -1 {
			return resp.NilArray, nil
		}
		count := int(n)
		if line[0] == '%' || line[0] == '|' {
			count *= 2
		}
		elems := make([]resp.Reply, 0, min(count, 1024))
		for i := 0; i < count; i++ {
			e, err := readReply(br, depth+1)
			if err != nil {
				return resp.Reply{}, err
			}
			elems = append(elems, e)
		}
		switch line[0] {
		case '%':
			return resp.Map(elems), nil
		case '~':
			return resp.Set(elems), nil
		case '>':
			return resp.Push(elems), nil
		case '|': // attributes precede the reply they describe: skip them
			return readReply(br, depth)
		}
		return resp.Array(elems), nil
	}
	return resp.Reply{}, errBadReply
}

// readBulk reads the payload announced by a bulk length line.
func readBulk(br *bufio.Reader, lenField []byte) ([]byte, error) {
	n, ok := redisnum.ParseInt(lenField)
	if !ok || n < 0 || n > maxBulk {
		return nil, errBadReply
	}
	// Grow with the data that actually arrives: a peer announcing a huge string it does not
	// send makes this node allocate nothing.
	var buf bytes.Buffer
	buf.Grow(int(min(n+2, 64<<10)))
	if _, err := io.CopyN(&buf, br, n+2); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b := buf.Bytes()
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, errBadReply
	}
	return b[:n:n], nil
}

// readLine returns one CRLF-terminated line without the CRLF. The slice is only valid until
// the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errBadReply
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errBadReply
	}
	return line[:len(line)-2], nil
}
