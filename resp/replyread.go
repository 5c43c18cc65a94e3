package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/vela-cache/vela/redisnum"
)

// ErrBadReply means a server sent something that is not RESP; its connection should be dropped.
var ErrBadReply = errors.New("resp: malformed reply")

// Limits on what a reply may make the reader allocate.
const (
	maxReplyBulk     = 1 << 30 // one string (proto_max_bulk_len can be at most this much on a server)
	maxReplyElements = 1 << 24 // one aggregate
	maxReplyDepth    = 16      // nesting
)

// ReadReply parses one RESP2 or RESP3 reply from a server (a push included) with bounds on what
// it allocates: a string of at most 1 GiB, grown as its bytes arrive, aggregates of at most 2^24
// elements and 16 levels. The returned reply owns its bytes.
func ReadReply(br *bufio.Reader) (Reply, error) { return readReply(br, 0) }

func readReply(br *bufio.Reader, depth int) (Reply, error) {
	if depth > maxReplyDepth {
		return Reply{}, ErrBadReply
	}
	line, err := readReplyLine(br)
	if err != nil {
		return Reply{}, err
	}
	if len(line) == 0 {
		return Reply{}, ErrBadReply
	}
	body := line[1:]
	switch line[0] {
	case '+':
		if string(body) == "OK" {
			return OK, nil // the common case, without allocating
		}
		return Status(string(body)), nil
	case '-', '!':
		if line[0] == '!' {
			b, err := readReplyBulk(br, body)
			return Error(string(b)), err
		}
		return Error(string(body)), nil
	case ':':
		n, ok := redisnum.ParseInt(body)
		if !ok {
			return Reply{}, ErrBadReply
		}
		return Int(n), nil
	case '(': // big number: passed on as a bulk string, as RESP2 does
		return BulkString(string(body)), nil
	case ',':
		f, err := strconv.ParseFloat(string(body), 64)
		if err != nil {
			return Reply{}, ErrBadReply
		}
		return Double(f), nil
	case '#':
		return Bool(len(body) == 1 && body[0] == 't'), nil
	case '_':
		return Nil, nil
	case '$', '=':
		n, ok := redisnum.ParseInt(body)
		if ok && n == -1 {
			return Nil, nil
		}
		b, err := readReplyBulk(br, body)
		if err != nil {
			return Reply{}, err
		}
		if line[0] == '=' {
			if len(b) >= 4 {
				b = b[4:] // "txt:"
			}
			return Verbatim(string(b)), nil
		}
		return Bulk(b), nil
	case '*', '%', '~', '>', '|':
		n, ok := redisnum.ParseInt(body)
		if !ok || n < -1 || n > maxReplyElements {
			return Reply{}, ErrBadReply
		}
		if n == -1 {
			return NilArray, nil
		}
		count := int(n)
		if line[0] == '%' || line[0] == '|' {
			count *= 2
		}
		elems := make([]Reply, 0, min(count, 1024))
		for i := 0; i < count; i++ {
			e, err := readReply(br, depth+1)
			if err != nil {
				return Reply{}, err
			}
			elems = append(elems, e)
		}
		switch line[0] {
		case '%':
			return Map(elems), nil
		case '~':
			return Set(elems), nil
		case '>':
			return Push(elems), nil
		case '|': // attributes precede the reply they describe: skip them
			return readReply(br, depth)
		}
		return Array(elems), nil
	}
	return Reply{}, ErrBadReply
}

// readReplyBulk reads the payload announced by a bulk length line.
func readReplyBulk(br *bufio.Reader, lenField []byte) ([]byte, error) {
	n, ok := redisnum.ParseInt(lenField)
	if !ok || n < 0 || n > maxReplyBulk {
		return nil, ErrBadReply
	}
	// Grow with the data that actually arrives: a server announcing a huge string it does not
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
		return nil, ErrBadReply
	}
	return b[:n:n], nil
}

// readReplyLine returns one CRLF-terminated line without the CRLF. The slice is only valid until
// the next read.
func readReplyLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, ErrBadReply
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, ErrBadReply
	}
	return line[:len(line)-2], nil
}
