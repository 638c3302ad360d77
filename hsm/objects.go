//go:build cgo

package hsm

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// findOne returns the single object matching tmpl. It asks for two so that
// a duplicate is noticed: zero matches return notFound, two return
// ErrDuplicateObject. C_FindObjectsFinal is always called once the search
// has begun.
func (s *session) findOne(tmpl []*pkcs11.Attribute, what string, notFound error) (pkcs11.ObjectHandle, error) {
	if err := s.p.FindObjectsInit(s.sh, tmpl); err != nil {
		return 0, fmt.Errorf("hsm: finding %s: %w", what, err)
	}
	hs, _, err := s.p.FindObjects(s.sh, 2)
	if ferr := s.p.FindObjectsFinal(s.sh); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return 0, fmt.Errorf("hsm: finding %s: %w", what, err)
	}
	switch len(hs) {
	case 0:
		return 0, notFound
	case 1:
		return hs[0], nil
	}
	return 0, fmt.Errorf("%w: %s", ErrDuplicateObject, what)
}

// findAll returns every object matching tmpl.
func (s *session) findAll(tmpl []*pkcs11.Attribute, what string) ([]pkcs11.ObjectHandle, error) {
	if err := s.p.FindObjectsInit(s.sh, tmpl); err != nil {
		return nil, fmt.Errorf("hsm: listing %s: %w", what, err)
	}
	var all []pkcs11.ObjectHandle
	var err error
	for {
		var hs []pkcs11.ObjectHandle
		hs, _, err = s.p.FindObjects(s.sh, 64)
		if err != nil || len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if ferr := s.p.FindObjectsFinal(s.sh); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: listing %s: %w", what, err)
	}
	return all, nil
}

// random returns n bytes from the token's RNG (C_GenerateRandom).
func (s *session) random(n int) ([]byte, error) {
	b, err := s.p.GenerateRandom(s.sh, n)
	if err != nil {
		return nil, fmt.Errorf("hsm: drawing random bytes: %w", err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("hsm: C_GenerateRandom returned %d bytes, want %d", len(b), n)
	}
	return b, nil
}

// randomInto fills dst from the token's RNG and wipes the intermediate
// copy; for secrets.
func (s *session) randomInto(dst []byte) error {
	b, err := s.random(len(dst))
	if err != nil {
		return err
	}
	copy(dst, b)
	clear(b)
	return nil
}
