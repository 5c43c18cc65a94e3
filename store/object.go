package store

import (
	"context"

	"github.com/vela-cache/vela/redisnum"
)

// Encoding records how the command that last wrote a value leaves Redis holding it, which is
// what OBJECT ENCODING reports: Redis picks a string's representation when a command creates
// it and keeps it until the value is replaced, so the same bytes can read "int" or "raw"
// depending on how they were written. The zero value is the common case.
type Encoding uint8

// Encodings, by the commands that produce them.
const (
	// EncodeByValue is a value written whole (SET and its family, MSET, INCR and its family, a
	// new key's APPEND): Redis keeps an integer of up to 20 characters as "int", other strings of
	// up to 44 bytes as "embstr", longer ones as "raw".
	EncodeByValue Encoding = iota
	// EncodeNoInt is INCRBYFLOAT's result: "embstr" up to 44 bytes, else "raw", even when the
	// sum reads as an integer.
	EncodeNoInt
	// EncodeRaw is a value changed in place (APPEND to an existing key, SETRANGE): "raw".
	EncodeRaw
	// EncodeCopiedInt is COPY's copy of a value Redis held as an integer: "int" as
	// EncodeByValue, but an object of its own, never a shared one (Redis's dupStringObject).
	// The memory store keeps an encoding in two bits: this is the last one that fits.
	EncodeCopiedInt
)

// Redis's limits: an integer is held as such up to 20 characters, a string is embedded in its
// object header up to 44 bytes, and integers 0–9999 are shared objects unless an LRU or LFU
// policy with a maxmemory needs each key's own access data.
const (
	intEncodingMaxLen = 20
	embstrMaxLen      = 44
	sharedIntegers    = 10000
	// SharedRefCount is the reference count Redis reports for a shared object.
	SharedRefCount = 2147483647
)

// Name returns Redis's name for how it holds value written this way: "int", "embstr" or "raw".
func (e Encoding) Name(value []byte) string {
	if (e == EncodeByValue || e == EncodeCopiedInt) && len(value) <= intEncodingMaxLen {
		if _, ok := redisnum.ParseInt(value); ok {
			return "int"
		}
	}
	if e != EncodeRaw && len(value) <= embstrMaxLen {
		return "embstr"
	}
	return "raw"
}

// SharedInt reports whether Redis would hold value, written this way, as one of its shared
// integer objects (0–9999), which it does when sharing is allowed: OBJECT REFCOUNT then says
// SharedRefCount.
func (e Encoding) SharedInt(value []byte) bool {
	if e != EncodeByValue || len(value) > 4 {
		return false
	}
	n, ok := redisnum.ParseInt(value)
	return ok && n >= 0 && n < sharedIntegers
}

// Object is what Redis's OBJECT command tells of a key.
type Object struct {
	// Encoding is "int", "embstr" or "raw" (Encoding.Name).
	Encoding string
	// RefCount is 1, or SharedRefCount for a small integer Redis would share.
	RefCount int64
	// Idle is the seconds since the key was last read or written; -1 when the store does not
	// track it (an LFU policy, or a store without access data).
	Idle int64
	// Freq is the key's logarithmic access counter under an LFU policy; -1 otherwise.
	Freq int64
}

// ObjectField names one OBJECT subcommand.
type ObjectField uint8

// OBJECT's subcommands about a key.
const (
	ObjectEncoding ObjectField = iota
	ObjectRefCount
	ObjectIdleTime
	ObjectFreq
)

// Describer is implemented by stores that can answer Redis's OBJECT about a key. Describing a key
// is not an access: its idle time and frequency do not change.
type Describer interface {
	// Object returns what OBJECT field tells of key, found false when key is missing. A store
	// that holds keys itself fills every field; one that asks another server fills only field.
	Object(ctx context.Context, key []byte, field ObjectField) (Object, bool, error)
}
