package frame

// COBS (consistent overhead byte stuffing) removes every zero byte from a
// frame so that 0x00 can delimit frames on a serial line, and a receiver
// resynchronises at the next 0x00 after noise. Overhead: one byte per 254
// bytes, plus one.

// COBSEncode appends the COBS encoding of src to dst (no delimiter).
func COBSEncode(dst, src []byte) []byte {
	codeAt := len(dst)
	dst = append(dst, 0)
	code := byte(1)
	for _, c := range src {
		if c != 0 {
			dst = append(dst, c)
			code++
		}
		if c == 0 || code == 0xFF {
			dst[codeAt] = code
			codeAt = len(dst)
			dst = append(dst, 0)
			code = 1
		}
	}
	dst[codeAt] = code
	return dst
}

// COBSDecode appends the decoding of src (one encoded frame, without its
// delimiter) to dst. It fails with ErrCodeCOBS on a zero byte or a code
// that runs past the end.
func COBSDecode(dst, src []byte) ([]byte, error) {
	for i := 0; i < len(src); {
		code := src[i]
		if code == 0 {
			return dst, Errorf(ErrCodeCOBS, "zero byte at %d", i)
		}
		i++
		n := int(code) - 1
		if i+n > len(src) {
			return dst, Errorf(ErrCodeCOBS, "code at %d runs past the end", i-1)
		}
		for _, c := range src[i : i+n] {
			if c == 0 {
				return dst, Errorf(ErrCodeCOBS, "zero byte inside a block")
			}
		}
		dst = append(dst, src[i:i+n]...)
		i += n
		if code != 0xFF && i < len(src) {
			dst = append(dst, 0)
		}
	}
	return dst, nil
}
