package redisstore

import "strconv"

// Redis Cluster places a key in one of 16384 hash slots: CRC16 (XMODEM) of the key, or of its
// hash tag, the part between the first '{' and the next '}' when that part is not empty. Vela's
// bookkeeping on Redis Cluster must sit in the slot of the user key (or tag) it belongs to, so
// that every Lua script touches one slot; go-redis keeps this computation internal, hence this
// copy of it.

// numSlots is the number of hash slots of a Redis Cluster.
const numSlots = 16384

// crc16Table is CRC16-CCITT (XMODEM: polynomial 0x1021, no reflection), the one Redis uses.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crc16Table[byte(c>>8)^s[i]]
	}
	return c
}

// keySlot returns the hash slot of key, as Redis Cluster's CLUSTER KEYSLOT does.
func keySlot(key string) uint16 {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						key = key[i+1 : j]
					}
					break
				}
			}
			break
		}
	}
	return crc16(key) % numSlots
}

// slotTags holds, for every slot, a short string (lower-case base 36, never a brace) that hashes
// to it. "{" + tag + "}" in a key name puts that key in the slot: the bookkeeping keys of a slot
// are named "__vela:{<tag>}:…".
type slotTags [numSlots]string

// newSlotTags finds the shortest such string for every slot (about 170,000 CRC16s of three or
// four bytes: a millisecond or two, once per store).
func newSlotTags() *slotTags {
	t := new(slotTags)
	left := numSlots
	for n := int64(0); left > 0; n++ {
		s := strconv.FormatInt(n, 36)
		if slot := crc16(s) % numSlots; t[slot] == "" {
			t[slot] = s
			left--
		}
	}
	return t
}
