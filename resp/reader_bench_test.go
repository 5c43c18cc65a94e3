package resp

import (
	"bytes"
	"io"
	"testing"
)

// loopReader serves the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

var _ io.Reader = (*loopReader)(nil)

// BenchmarkReaderPipelined parses a pipelined stream of "SET key value" commands.
func BenchmarkReaderPipelined(b *testing.B) {
	cmd := []byte("*3\r\n$3\r\nSET\r\n$10\r\nkey:000001\r\n$64\r\n" + string(bytes.Repeat([]byte("v"), 64)) + "\r\n")
	rd := NewReader(&loopReader{data: cmd}, Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(cmd)))
	for i := 0; i < b.N; i++ {
		for {
			args, err := rd.Next()
			if err != nil {
				b.Fatal(err)
			}
			if args != nil {
				break
			}
			if err := rd.Fill(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAppendBulk(b *testing.B) {
	val := bytes.Repeat([]byte("v"), 64)
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out = Append(out[:0], Bulk(val), 2)
	}
}
