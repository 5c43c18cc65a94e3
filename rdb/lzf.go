package rdb

// decompress expands LZF data in into exactly n bytes, as liblzf's lzf_decompress does (which
// Redis uses). Each control byte starts either a run of 1–32 literal bytes (below 32) or a back
// reference: its top three bits are the length minus 2 (7: a further byte adds to it), its low
// five bits and the next byte the distance minus 1. It reports false for data that is
// malformed or does not expand to n bytes.
func decompress(in []byte, n int) ([]byte, bool) {
	out := make([]byte, 0, n)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 1<<5 { // literal run
			run := ctrl + 1
			if len(out)+run > n || i+run > len(in) {
				return nil, false
			}
			out = append(out, in[i:i+run]...)
			i += run
			continue
		}
		length := ctrl >> 5
		if i >= len(in) {
			return nil, false
		}
		if length == 7 {
			length += int(in[i])
			i++
			if i >= len(in) {
				return nil, false
			}
		}
		ref := len(out) - (ctrl&0x1F)<<8 - 1 - int(in[i])
		i++
		length += 2
		if len(out)+length > n || ref < 0 {
			return nil, false
		}
		for k := 0; k < length; k++ { // byte by byte: the reference may overlap what it writes
			out = append(out, out[ref+k])
		}
	}
	return out, len(out) == n
}
