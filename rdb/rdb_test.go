package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestChecksumVector: Redis's crc64.c documents crc64(0, "123456789") = 0xe9c6d914c4b8d9ca.
func TestChecksumVector(t *testing.T) {
	if got := checksum(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("checksum = %#x", got)
	}
}

// TestDumpEncodings: the encodings Redis 7.0 writes for integers and plain strings, byte for
// byte (redis-server 7.0.15's DUMP bodies), but for the 64 zero bytes, which Redis compresses
// and Vela does not (TestDumpRestoreWithRedis in internal/e2e compares with a live Redis).
func TestDumpEncodings(t *testing.T) {
	for _, c := range []struct {
		v    string
		body []byte
	}{
		{"", []byte{0, 0}},
		{"1", []byte{0, 0xC0, 1}},
		{"-128", []byte{0, 0xC0, 0x80}},
		{"128", []byte{0, 0xC1, 0x80, 0}},
		{"-2147483648", []byte{0, 0xC2, 0, 0, 0, 0x80}},
		{"2147483648", append([]byte{0, 10}, "2147483648"...)},
		{"007", append([]byte{0, 3}, "007"...)},
		{"+1", append([]byte{0, 2}, "+1"...)},
		{string(make([]byte, 64)), append([]byte{0, 0x40, 64}, make([]byte, 64)...)},
	} {
		got := Dump([]byte(c.v))
		body := got[:len(got)-10]
		if !bytes.Equal(body, c.body) {
			t.Errorf("Dump(%q) body = %x, want %x", c.v, body, c.body)
		}
		if v, err := Restore(got, 1<<20); err != nil || string(v) != c.v {
			t.Errorf("Restore(Dump(%q)) = %q, %v", c.v, v, err)
		}
	}
}

// TestRestoreRefuses: a bad footer, another type, and malformed or oversized values are
// refused with the errors RESTORE maps to Redis's texts.
func TestRestoreRefuses(t *testing.T) {
	good := Dump([]byte("hello"))
	flip := append([]byte(nil), good...)
	flip[2] ^= 1
	newer := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(newer[len(newer)-10:], Version+1)
	seal := func(body ...byte) []byte { // body with a valid footer
		b := append(body, byte(Version), 0)
		return binary.LittleEndian.AppendUint64(b, checksum(0, b))
	}
	for _, c := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"short", good[:9], ErrChecksum},
		{"flipped", flip, ErrChecksum},
		{"newer", newer, ErrChecksum},
		{"empty body", seal(), ErrFormat},
		{"list", seal(18, 0), NotStringError{18}},
		{"truncated", seal(0, 5, 'a'), ErrFormat},
		{"bad length", seal(0, 0x82), ErrFormat},
		{"bad special", seal(0, 0xC4), ErrFormat},
		{"too long", seal(0, 0x80, 0, 0x20, 0, 0), ErrFormat},
		{"lzf too large", seal(0, 0xC3, 1, 0x80, 0x10, 0, 0, 0, 0), ErrFormat},
		{"lzf short", seal(0, 0xC3, 2, 3, 1, 'a'), ErrFormat},
		{"lzf bad ref", seal(0, 0xC3, 2, 5, 0x20, 5), ErrFormat},
	} {
		if _, err := Restore(c.payload, 1<<20); !errors.Is(err, c.want) && err != c.want {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestDecompress: literal runs and back references, overlapping ones included, as liblzf
// writes them ("abcabcabcabc" is a run of 3 literals and a reference of 9 bytes at distance 3).
func TestDecompress(t *testing.T) {
	in := []byte{2, 'a', 'b', 'c', 7 << 5, 0, 2}
	if out, ok := decompress(in, 12); !ok || string(out) != "abcabcabcabc" {
		t.Fatalf("decompress = %q, %v", out, ok)
	}
	if _, ok := decompress(in, 11); ok {
		t.Fatal("decompress into fewer bytes than the data expands to succeeded")
	}
}

// FuzzRestore: no payload panics Restore or makes it return more than maxLen bytes, and every
// value it returns dumps and restores to itself.
func FuzzRestore(f *testing.F) {
	f.Add(Dump([]byte("hello")))
	f.Add(Dump([]byte("12345")))
	f.Add([]byte{0, 0xC3, 5, 12, 2, 'a', 'b', 'c', 7 << 5, 0, 2, 10, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		// Half the inputs get a valid footer, so that the decoder itself is exercised.
		if len(payload) > 0 && payload[0]&1 == 1 {
			b := append(payload[1:len(payload):len(payload)], byte(Version), 0)
			payload = binary.LittleEndian.AppendUint64(b, checksum(0, b))
		}
		v, err := Restore(payload, 1<<16)
		if err != nil {
			return
		}
		if len(v) > 1<<16 {
			t.Fatalf("Restore returned %d bytes, more than its bound", len(v))
		}
		if back, err := Restore(Dump(v), 1<<16); err != nil || !bytes.Equal(back, v) {
			t.Fatalf("Restore(Dump(%q)) = %q, %v", v, back, err)
		}
	})
}
