package rdb

// checksum is Redis's CRC-64 (crc64.c: the Jones polynomial 0xad93d23594c935a9, reflected, no
// initial or final inversion) of b, continuing from crc.
func checksum(crc uint64, b []byte) uint64 {
	for _, c := range b {
		crc = crcTable[byte(crc)^c] ^ crc>>8
	}
	return crc
}

// crcTable is the byte-at-a-time table of the reflected Jones polynomial.
var crcTable = func() (t [256]uint64) {
	const reflected = 0x95ac9329ac4bc9b5
	for i := range t {
		crc := uint64(i)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ reflected
			} else {
				crc >>= 1
			}
		}
		t[i] = crc
	}
	return t
}()
