package resp

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"

	"github.com/vela-cache/vela/redisnum"
)

// Limits bound what one client may make the reader hold. The zero value means Redis's defaults.
type Limits struct {
	// MaxBulkLen is the largest bulk string a client may send (proto-max-bulk-len). Default 512 MiB.
	MaxBulkLen int64
	// MaxQueryBuffer is the most unparsed input one connection may hold; past it the connection is
	// closed (client-query-buffer-limit). Default 1 GiB.
	MaxQueryBuffer int
}

const (
	defaultMaxBulkLen     = 512 << 20
	defaultMaxQueryBuffer = 1 << 30
	maxInline             = 64 << 10           // PROTO_INLINE_MAX_SIZE: longest inline command or count line
	maxInlineLine         = maxInline + 16<<10 // longest inline line Redis serves (see inline)
	maxMultibulkLen       = 1<<31 - 1
	unauthMultibulkLen    = 10    // most arguments before AUTH when a password is required
	unauthBulkLen         = 16384 // longest argument before AUTH when a password is required
	initialBufSize        = 16 << 10
	greedyBufSize         = 4 * initialBufSize // grown to after a read that filled the buffer; kept while busy
)

// ProtocolError is a malformed request. Its text is what Redis replies before closing the
// connection, e.g. "Protocol error: invalid bulk length".
type ProtocolError struct{ Msg string }

// Error implements error: the text Redis replies with.
func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

// ErrQueryBufferLimit means a client sent more unparsed input than Limits.MaxQueryBuffer.
var ErrQueryBufferLimit = errors.New("resp: query buffer limit reached")

// Reader parses commands (multibulk or inline) from a stream without copying them: the argument
// slices it returns alias its buffers and stay valid until the next call to Next or Fill. What it
// allocates follows what the client has actually sent, whatever lengths and counts the client
// announces: the buffer is at most about twice the unparsed input, plus 16 bytes of offsets per
// argument already received (a command of many empty arguments, 6 bytes each, costs several
// times its size while it arrives, as it does in Redis). A Reader is not safe for concurrent use.
type Reader struct {
	rd     io.Reader
	limits Limits
	buf    []byte
	r, w   int  // buf[r:w] is read but not yet consumed
	prev   int  // r before the command Next returned last, for Unread
	filled bool // the last read filled all the room it was given
	// need is how many bytes from r the argument still arriving ends at (0: none), so that one
	// growth makes room for a large argument instead of one doubling per read; lastSize is the
	// size of the command Next returned last, so that a buffer a client keeps filling with large
	// commands is kept rather than given back after each.
	need, lastSize int

	// requireAuth applies Redis's stricter limits to clients that have not authenticated.
	requireAuth bool
	// counted, when set, adds up the bytes read (INFO total_net_input_bytes).
	counted *atomic.Uint64

	// State of a multibulk command whose arguments have not all arrived yet. Offsets are relative
	// to r, so they survive the buffer being compacted.
	pending  int   // arguments still expected; 0 when no multibulk is in progress
	scan     int   // offset from r where parsing resumes
	offs     []int // start,end offset pairs of the arguments parsed so far
	args     [][]byte
	inlineSc []byte // scratch for inline arguments that needed unescaping
}

// NewReader returns a Reader on rd with the given limits.
func NewReader(rd io.Reader, limits Limits) *Reader {
	if limits.MaxBulkLen <= 0 {
		limits.MaxBulkLen = defaultMaxBulkLen
	}
	if limits.MaxQueryBuffer <= 0 {
		limits.MaxQueryBuffer = defaultMaxQueryBuffer
	}
	return &Reader{rd: rd, limits: limits, buf: make([]byte, initialBufSize)}
}

// SetRequireAuth turns the unauthenticated limits on or off.
func (rd *Reader) SetRequireAuth(on bool) { rd.requireAuth = on }

// Unread puts back the command Next returned last, so that the next call to Next returns it
// again. It is valid only right after Next returned a command, before Fill.
func (rd *Reader) Unread() { rd.r = rd.prev }

// Buffered reports whether unconsumed input is waiting in the buffer.
func (rd *Reader) Buffered() bool { return rd.w > rd.r }

// Next parses the next complete command from the buffer. It returns nil args and a nil error when
// the buffer holds no complete command: call Fill, then Next again. A *ProtocolError means the
// input is malformed; the connection should be answered and closed.
func (rd *Reader) Next() ([][]byte, error) {
	for {
		if rd.r == rd.w && rd.pending == 0 {
			return nil, nil
		}
		data := rd.buf[rd.r:rd.w]
		if rd.pending == 0 {
			if data[0] != '*' {
				args, skipped, err := rd.inline(data)
				if skipped {
					continue // an empty line is skipped, as Redis does
				}
				return args, err
			}
			line, n := readLine(data)
			if n < 0 {
				if len(data) > maxInline {
					return nil, &ProtocolError{"too big mbulk count string"}
				}
				return nil, nil
			}
			count, ok := redisnum.ParseInt(line[1:])
			if !ok || count > maxMultibulkLen {
				return nil, &ProtocolError{"invalid multibulk length"}
			}
			if count > unauthMultibulkLen && rd.requireAuth {
				return nil, &ProtocolError{"unauthenticated multibulk length"}
			}
			if count <= 0 {
				rd.r += n
				continue // an empty multibulk is skipped, as Redis does
			}
			rd.pending = int(count)
			rd.scan = n
			rd.offs = rd.offs[:0]
		}
		for rd.pending > 0 {
			data = rd.buf[rd.r+rd.scan : rd.w]
			if len(data) == 0 {
				return nil, nil
			}
			if data[0] != '$' {
				return nil, &ProtocolError{"expected '$', got '" + string(data[0]) + "'"}
			}
			line, n := readLine(data)
			if n < 0 {
				if len(data) > maxInline {
					return nil, &ProtocolError{"too big bulk count string"}
				}
				return nil, nil
			}
			size, ok := redisnum.ParseInt(line[1:])
			if !ok || size < 0 || size > rd.limits.MaxBulkLen {
				return nil, &ProtocolError{"invalid bulk length"}
			}
			if size > unauthBulkLen && rd.requireAuth {
				return nil, &ProtocolError{"unauthenticated bulk length"}
			}
			if int64(len(data)-n)-2 < size { // not size+2, which can overflow
				rd.need = rd.scan + n + int(size) + 2
				return nil, nil // the argument has not fully arrived
			}
			start := rd.scan + n
			rd.offs = append(rd.offs, start, start+int(size))
			rd.scan = start + int(size) + 2
			rd.pending--
		}
		args := rd.args[:0]
		for i := 0; i < len(rd.offs); i += 2 {
			args = append(args, rd.buf[rd.r+rd.offs[i]:rd.r+rd.offs[i+1]:rd.r+rd.offs[i+1]])
		}
		rd.args = args
		rd.prev = rd.r
		rd.r += rd.scan
		rd.lastSize, rd.need = rd.scan, 0
		rd.scan = 0
		return args, nil
	}
}

// PeekKeys looks at the complete multibulk commands buffered after the next one Next returns,
// that one included, without consuming them, and stores the second argument of each (the key of
// most commands; nil for a command of one argument) in keys. It stops at the first command not
// fully buffered, an inline command or anything malformed, which Next will report, and returns
// how many commands it looked at. The slices alias the buffer, like Next's.
func (rd *Reader) PeekKeys(keys [][]byte) int {
	if rd.pending != 0 {
		return 0
	}
	pos, n := rd.r, 0
	for n < len(keys) {
		next, key, ok := rd.peekCommand(pos)
		if !ok {
			break
		}
		keys[n] = key
		n++
		pos = next
	}
	return n
}

// peekCommand measures the multibulk command at buf[pos:] without consuming it: where the
// command after it starts, and its second argument. ok is false unless the command has fully
// arrived and is well formed.
func (rd *Reader) peekCommand(pos int) (next int, key []byte, ok bool) {
	count, p, ok := rd.peekHeader(pos, '*')
	if !ok || count <= 0 || count > maxMultibulkLen {
		return 0, nil, false
	}
	for i := range count {
		size, start, ok := rd.peekHeader(p, '$')
		if !ok || size < 0 || size > int64(rd.w-start)-2 { // not size+2, which can overflow
			return 0, nil, false
		}
		end := start + int(size)
		if i == 1 {
			key = rd.buf[start:end:end]
		}
		p = end + 2
	}
	return p, key, true
}

// peekHeader reads the line at buf[pos:] that announces a multibulk count ('*') or a bulk
// length ('$'): its number and where the line ends. ok is false unless the line has fully
// arrived, starts with kind and holds an integer.
func (rd *Reader) peekHeader(pos int, kind byte) (n int64, end int, ok bool) {
	if pos >= rd.w || rd.buf[pos] != kind {
		return 0, 0, false
	}
	line, used := readLine(rd.buf[pos:rd.w])
	if used < 0 {
		return 0, 0, false
	}
	n, ok = redisnum.ParseInt(line[1:])
	return n, pos + used, ok
}

// inline parses a telnet-style command line. It returns nil args and a nil error both when the
// line has not fully arrived and when it was empty (skipped); skipped reports the latter.
func (rd *Reader) inline(data []byte) (args [][]byte, skipped bool, err error) {
	nl := bytes.IndexByte(data, '\n')
	// Redis refuses a line once more than 64 KiB have arrived without its end. It reads 16 KiB at
	// a time, so it first looks at 80 KiB: a line whose end is within them is served, a longer
	// one refused, even when it all arrives at once.
	if nl >= maxInlineLine || (nl < 0 && len(data) > maxInline) {
		return nil, false, &ProtocolError{"too big inline request"}
	}
	if nl < 0 {
		return nil, false, nil
	}
	line := data[:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, rd.inlineSc, err = rd.splitInline(line)
	if err != nil {
		return nil, false, err
	}
	rd.prev = rd.r
	rd.r += nl + 1
	rd.args = args
	if len(args) == 0 {
		return nil, true, nil
	}
	return args, false, nil
}

func (rd *Reader) splitInline(line []byte) ([][]byte, []byte, error) {
	args, scratch, ok := splitInline(line, rd.args[:0], rd.inlineSc[:0])
	if !ok {
		return nil, scratch, &ProtocolError{"unbalanced quotes in request"}
	}
	return args, scratch, nil
}

// Fill reads more input into the buffer, compacting or growing it as needed. Argument slices
// returned by Next before the call are invalid after it.
func (rd *Reader) Fill() error { return rd.FillFrom(rd.rd) }

// FillFrom is Fill reading from src instead of the Reader's own source: an event loop reads the
// socket without blocking, and one read that finds nothing returns src's error (EAGAIN).
func (rd *Reader) FillFrom(src io.Reader) error {
	if rd.r > 0 {
		if rd.r == rd.w && len(rd.buf) > 4*initialBufSize && rd.pending == 0 && rd.lastSize < len(rd.buf)/4 {
			rd.buf = make([]byte, initialBufSize) // give back a buffer grown by a big command
		} else {
			copy(rd.buf, rd.buf[rd.r:rd.w])
		}
		rd.w -= rd.r
		rd.r = 0
	}
	// Grow when the buffer is full, and also, up to greedyBufSize, when the last read filled all
	// the room it had: a client pipelining more than the buffer holds then gets its whole batch
	// read, and answered, at once instead of in two halves (Redis's query buffer is greedy too).
	if rd.w == len(rd.buf) || (rd.filled && len(rd.buf) < greedyBufSize) {
		if len(rd.buf) >= rd.limits.MaxQueryBuffer {
			return ErrQueryBufferLimit
		}
		// Room for the argument arriving, when its length is known, with some to spare for what
		// follows; but never more than four times what has arrived (the buffer is full of it),
		// so that a client cannot make the server allocate what it did not send.
		size := min(max(2*len(rd.buf), min(rd.need+initialBufSize, 4*len(rd.buf))), rd.limits.MaxQueryBuffer)
		grown := make([]byte, size)
		copy(grown, rd.buf[:rd.w])
		rd.buf = grown
	}
	n, err := src.Read(rd.buf[rd.w:])
	if n > 0 && rd.counted != nil {
		rd.counted.Add(uint64(n))
	}
	rd.filled = n == len(rd.buf)-rd.w
	rd.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readLine returns the line at the start of data without its CRLF and the bytes it used, or
// n < 0 when no full line has arrived.
func readLine(data []byte) (line []byte, n int) {
	i := bytes.IndexByte(data, '\r')
	if i < 0 || i+1 >= len(data) {
		return nil, -1
	}
	// Like Redis, the byte after '\r' is skipped without being checked.
	return data[:i], i + 2
}
