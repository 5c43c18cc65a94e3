// Package rdb writes and reads one string value in Redis's RDB serialization, as DUMP produces
// it and RESTORE consumes it: the value's type and encoding, then the RDB version (two bytes,
// little-endian) and a CRC-64 of everything before it (eight bytes, little-endian).
//
// Dump encodes as Redis 7.0 does (small integers as integers, other strings with their length)
// except that it never compresses: Redis compresses a string of more than 20 bytes with LZF
// when that saves at least four bytes. Such a payload is still one Redis accepts. Restore reads
// every string encoding Redis writes, LZF included.
package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Version is the RDB version Vela writes and the newest it reads: Redis 7.0's.
const Version = 10

// typeString is the RDB type of a string value; the other types are Redis's lists, sets and
// the like, which Vela does not store.
const typeString = 0

// Errors of Restore.
var (
	// ErrChecksum: the payload is too short, from a newer RDB version, or its checksum does not
	// match (Redis's "DUMP payload version or checksum are wrong").
	ErrChecksum = errors.New("rdb: DUMP payload version or checksum are wrong")
	// ErrFormat: the value cannot be decoded (Redis's "Bad data format").
	ErrFormat = errors.New("rdb: bad data format")
)

// NotStringError is Restore's error for a payload holding another type than a string.
type NotStringError struct{ Type byte }

func (e NotStringError) Error() string {
	return fmt.Sprintf("rdb: the payload holds a value of RDB type %d, not a string", e.Type)
}

// Dump returns the DUMP payload of the string v.
func Dump(v []byte) []byte {
	b := make([]byte, 0, 1+9+len(v)+10)
	b = append(b, typeString)
	if enc, ok := appendInt(b, v); ok {
		b = enc
	} else {
		b = appendLen(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = append(b, byte(Version), byte(Version>>8))
	return binary.LittleEndian.AppendUint64(b, checksum(0, b))
}

// appendInt appends v's integer encoding, as Redis's rdbTryIntegerEncoding chooses it: only for
// a string that is exactly an integer's decimal form (no sign but '-', no leading zero) of at
// most 11 bytes that fits in 32 bits.
func appendInt(b, v []byte) ([]byte, bool) {
	if len(v) == 0 || len(v) > 11 {
		return b, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != string(v) {
		return b, false
	}
	switch {
	case n >= -1<<7 && n < 1<<7:
		return append(b, 0xC0, byte(int8(n))), true
	case n >= -1<<15 && n < 1<<15:
		return binary.LittleEndian.AppendUint16(append(b, 0xC1), uint16(int16(n))), true
	case n >= -1<<31 && n < 1<<31:
		return binary.LittleEndian.AppendUint32(append(b, 0xC2), uint32(int32(n))), true
	}
	return b, false
}

// appendLen appends n in RDB's length encoding.
func appendLen(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, 0x40|byte(n>>8), byte(n))
	case n <= 1<<32-1:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), n)
}

// Check verifies payload's footer: its RDB version and its checksum.
func Check(payload []byte) error {
	if len(payload) < 10 {
		return ErrChecksum
	}
	footer := payload[len(payload)-10:]
	if binary.LittleEndian.Uint16(footer) > Version {
		return ErrChecksum
	}
	if checksum(0, payload[:len(payload)-8]) != binary.LittleEndian.Uint64(footer[2:]) {
		return ErrChecksum
	}
	return nil
}

// Restore checks payload (Check) and returns the string value it holds. maxLen bounds the value
// (proto_max_bulk_len): a compressed value may declare a size only its decompression reveals,
// and it must not make Restore allocate more than that, nor much more than the payload's size.
func Restore(payload []byte, maxLen int) ([]byte, error) {
	if err := Check(payload); err != nil {
		return nil, err
	}
	body := payload[:len(payload)-10]
	if len(body) == 0 {
		return nil, ErrFormat
	}
	if body[0] != typeString {
		return nil, NotStringError{body[0]}
	}
	r := reader{b: body[1:]}
	return r.str(maxLen)
}

// reader reads RDB encodings from b.
type reader struct{ b []byte }

func (r *reader) take(n uint64) ([]byte, bool) {
	if n > uint64(len(r.b)) {
		return nil, false
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, true
}

// length reads an RDB length, or reports the special encoding (0–3) that follows instead.
func (r *reader) length() (n uint64, special int, err error) {
	first, ok := r.take(1)
	if !ok {
		return 0, 0, ErrFormat
	}
	b := first[0]
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3F), -1, nil
	case 1:
		next, ok := r.take(1)
		if !ok {
			return 0, 0, ErrFormat
		}
		return uint64(b&0x3F)<<8 | uint64(next[0]), -1, nil
	case 2:
		switch b {
		case 0x80:
			if v, ok := r.take(4); ok {
				return uint64(binary.BigEndian.Uint32(v)), -1, nil
			}
		case 0x81:
			if v, ok := r.take(8); ok {
				return binary.BigEndian.Uint64(v), -1, nil
			}
		}
		return 0, 0, ErrFormat
	}
	return 0, int(b & 0x3F), nil
}

// str reads one string in any of its encodings.
func (r *reader) str(maxLen int) ([]byte, error) {
	n, special, err := r.length()
	if err != nil {
		return nil, err
	}
	var v []byte
	var ok bool
	switch special {
	case -1:
		if n > uint64(maxLen) {
			return nil, ErrFormat
		}
		v, ok = r.take(n)
		if !ok {
			return nil, ErrFormat
		}
		return append([]byte(nil), v...), nil
	case 0:
		if v, ok = r.take(1); ok {
			return strconv.AppendInt(nil, int64(int8(v[0])), 10), nil
		}
	case 1:
		if v, ok = r.take(2); ok {
			return strconv.AppendInt(nil, int64(int16(binary.LittleEndian.Uint16(v))), 10), nil
		}
	case 2:
		if v, ok = r.take(4); ok {
			return strconv.AppendInt(nil, int64(int32(binary.LittleEndian.Uint32(v))), 10), nil
		}
	case 3:
		return r.lzf(maxLen)
	}
	return nil, ErrFormat
}

// maxRatio bounds how much LZF can expand its input: a back reference of 3 bytes stands for at
// most 264 bytes.
const maxRatio = 88

// lzf reads an LZF-compressed string: its compressed and its plain length, then the data.
func (r *reader) lzf(maxLen int) ([]byte, error) {
	clen, s1, err := r.length()
	if err != nil || s1 != -1 {
		return nil, ErrFormat
	}
	plen, s2, err := r.length()
	if err != nil || s2 != -1 || plen > uint64(maxLen) || plen > (clen+1)*maxRatio {
		return nil, ErrFormat
	}
	in, ok := r.take(clen)
	if !ok {
		return nil, ErrFormat
	}
	out, ok := decompress(in, int(plen))
	if !ok {
		return nil, ErrFormat
	}
	return out, nil
}
