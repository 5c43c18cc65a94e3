package replicate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// A member on the disk store keeps its stamps in a file beside the store's (Config.StampsPath),
// written every saveEvery while they change and at shutdown, and read at start. Without it, a
// restarted member's keys would carry no stamp and a member that missed writes could bring
// older values back to members that had restarted too. A member killed between two saves loses
// the stamps of the writes since the last one: those keys then carry their previous stamp, and
// the other members' copies of the same writes, stamped, win over them.

// stampsMagic opens a stamps file (its format's version is the last byte).
var stampsMagic = []byte("VELASTAMPS\x01")

// errStampsFile reports a stamps file that is not one.
var errStampsFile = errors.New("replicate: not a stamps file")

// save writes the versions to path atomically (a temporary file renamed over it).
func (v *versions) save(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	w := bufio.NewWriterSize(tmp, 1<<16)
	var buf []byte
	stamp := func(s Stamp) {
		buf = binary.AppendUvarint(buf, s.Time)
		buf = binary.AppendUvarint(buf, s.Node)
	}
	bytesField := func(b string) {
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	buf = append(buf, stampsMagic...)
	stamp(v.flushStamp())
	floors := v.tagFloors()
	buf = binary.AppendUvarint(buf, uint64(len(floors)))
	for t, s := range floors {
		bytesField(t)
		stamp(s)
	}
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			buf = append(buf, 1) // an entry follows
			bytesField(k)
			stamp(e.stamp)
			gone := byte(0)
			if e.gone {
				gone = 1
			}
			buf = append(buf, gone)
			if len(buf) > 1<<15 {
				if _, err := w.Write(buf); err != nil {
					sh.mu.Unlock()
					_ = tmp.Close()
					return err
				}
				buf = buf[:0]
			}
		}
		sh.mu.Unlock()
	}
	buf = append(buf, 0) // the end
	if _, err := w.Write(buf); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// load reads the versions saved at path into v; a missing file is no error (a first start).
func (v *versions) load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	magic := make([]byte, len(stampsMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != string(stampsMagic) {
		return fmt.Errorf("%s: %w", path, errStampsFile)
	}
	fail := func(err error) error { return fmt.Errorf("%s: %w (%v)", path, errStampsFile, err) }
	stamp := func() (Stamp, error) {
		t, err := binary.ReadUvarint(r)
		if err != nil {
			return Stamp{}, err
		}
		n, err := binary.ReadUvarint(r)
		return Stamp{Time: t, Node: n}, err
	}
	field := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		if n > 1<<30 {
			return "", errors.New("field too long")
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	flush, err := stamp()
	if err != nil {
		return fail(err)
	}
	v.setFlush(flush)
	nt, err := binary.ReadUvarint(r)
	if err != nil {
		return fail(err)
	}
	for ; nt > 0; nt-- {
		t, err := field()
		if err != nil {
			return fail(err)
		}
		s, err := stamp()
		if err != nil {
			return fail(err)
		}
		v.setTags([][]byte{[]byte(t)}, s)
	}
	for {
		more, err := r.ReadByte()
		if err != nil {
			return fail(err)
		}
		if more == 0 {
			return nil
		}
		k, err := field()
		if err != nil {
			return fail(err)
		}
		s, err := stamp()
		if err != nil {
			return fail(err)
		}
		gone, err := r.ReadByte()
		if err != nil {
			return fail(err)
		}
		v.put([]byte(k), entry{stamp: s, gone: gone == 1})
	}
}
