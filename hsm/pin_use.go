package hsm

// Use calls f with the PIN's bytes, in place in locked memory, and returns
// what f returns. It exists for the other cold-side code that logs in to a
// token through a different PKCS#11 library (package hsm/tlskey, which
// hands the PIN to crypto11): f must not keep the slice, or anything
// aliasing it, after it returns, and must not modify it. A wiped PIN
// gives f an empty slice.
func (p *PIN) Use(f func(pin []byte) error) error {
	if p.Len() == 0 {
		return f(nil)
	}
	return f(p.bytes())
}
