//go:build cgo

package hsm

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// The probe's trials of the protective attributes, each on throw-away
// session keys: the attribute asked for, read back, and the protection it
// promises tried (with a control where a refusal could have another
// cause).

// attributes tries each protective attribute on throw-away AES keys.
func (pr *prober) attributes() ([]AttributeSupport, error) {
	out := make([]AttributeSupport, 0, len(attrOrder))
	for _, a := range attrOrder {
		s, err := pr.attribute(a)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (pr *prober) attribute(a Attribute) (AttributeSupport, error) {
	typ := attrTypes[a]
	s := AttributeSupport{Attribute: a, Known: true}
	protect := true // the value that asks for protection
	if a != AttrSensitive && a != AttrPrivate {
		protect = false // extractable, copyable, destroyable, modifiable: false protects
	}
	extra := []*pkcs11.Attribute{pkcs11.NewAttribute(typ, protect)}
	if a == AttrSensitive {
		// Extractable, so that SoftHSM's "unextractable values are
		// unreadable" does not stand in for sensitivity.
		extra = append(extra, pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true))
	}
	if a == AttrExtractable {
		extra = append(extra, pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true))
	}
	h, err := pr.aesKey(extra...)
	switch {
	case isCode(err, ckrAttributeTypeInvalid):
		s.Known = false
		s.Detail = fmt.Sprintf("unknown to the token (%v): left out of every template", err)
		return s, nil
	case err != nil:
		if e := errLost(err); e != nil {
			return s, e
		}
		s.Detail = fmt.Sprintf("a key with it could not be made (%v)", err)
		return s, nil
	}
	defer pr.destroy(h)
	back, err := pr.p.GetAttributeValue(pr.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	if err != nil {
		if e := errLost(err); e != nil {
			return s, e
		}
		s.Detail = fmt.Sprintf("accepted but not read back (%v)", err)
		return s, nil
	}
	if attrBool(back, typ) != protect {
		s.Detail = fmt.Sprintf("accepted, but read back as %v", !protect)
		return s, nil
	}
	switch a {
	case AttrSensitive:
		_, err := pr.p.GetAttributeValue(pr.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if !isCode(err, ckrAttributeSensitive) {
			s.Detail = fmt.Sprintf("the value of a sensitive key was readable (%v)", errOr(err, "no error"))
			return s, errLost(err)
		}
		if err := pr.p.SetAttributeValue(pr.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, false)}); err == nil {
			s.Detail = "a sensitive key could be made non-sensitive"
			return s, nil
		}
		s.Enforced, s.Detail = true, "the value is unreadable (CKR_ATTRIBUTE_SENSITIVE) and the attribute cannot be turned off"
	case AttrExtractable:
		return pr.extractable(s, h)
	case AttrCopyable:
		return pr.copyable(s, h)
	case AttrDestroyable:
		err := pr.p.DestroyObject(pr.sh, h)
		if err == nil {
			s.Detail = "a non-destroyable key was destroyed"
			return s, nil
		}
		if e := errLost(err); e != nil {
			return s, e
		}
		s.Enforced, s.Detail = true, fmt.Sprintf("destroying it was refused (%v)", err)
	case AttrModifiable:
		return pr.modifiable(s, h)
	case AttrPrivate:
		s.Enforced, s.Detail = true, "accepted on keys and read back; the token requires a login"
		if err := pr.privateData(); err != nil {
			if e := errLost(err); e != nil {
				return s, e
			}
			s.Enforced = false
			s.Detail = fmt.Sprintf("accepted on keys, but a private data object was refused (%v): wallets stored on this token are public objects", err)
		}
	}
	return s, nil
}

func errOr(err error, s string) string {
	if err == nil {
		return s
	}
	return err.Error()
}

// probeWrap returns a way to wrap a key on this token for the extractable
// test: a wrapping session key and the mechanism, or ok false.
func (pr *prober) probeWrap() (wrapper pkcs11.ObjectHandle, mech []*pkcs11.Mechanism, ok bool, err error) {
	var m *pkcs11.Mechanism
	switch {
	case pr.has(ckmAESKeyWrapPad, ckfWrap):
		m = pkcs11.NewMechanism(ckmAESKeyWrapPad, nil)
	case pr.has(ckmAESKeyWrap, ckfWrap):
		m = pkcs11.NewMechanism(ckmAESKeyWrap, nil)
	case pr.has(ckmAESCBCPad, ckfWrap):
		m = pkcs11.NewMechanism(ckmAESCBCPad, make([]byte, 16))
	default:
		return 0, nil, false, nil
	}
	h, err := pr.aesKey(pr.filter([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
	})...)
	if err != nil {
		return 0, nil, false, errLost(err)
	}
	return h, []*pkcs11.Mechanism{m}, true, nil
}

func (pr *prober) extractable(s AttributeSupport, h pkcs11.ObjectHandle) (AttributeSupport, error) {
	if err := pr.p.SetAttributeValue(pr.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true)}); err == nil {
		s.Detail = "a non-extractable key could be made extractable"
		return s, nil
	}
	w, mech, ok, err := pr.probeWrap()
	if err != nil {
		return s, err
	}
	if !ok {
		s.Detail = "cannot be made extractable; not tested by wrapping (the token offers no AES wrapping mechanism)"
		return s, nil
	}
	defer pr.destroy(w)
	// The control: an extractable key wraps with this mechanism.
	ctl, err := pr.aesKey(pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true), pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true))
	if err != nil {
		s.Detail = fmt.Sprintf("not tested: an extractable key could not be made (%v)", err)
		return s, errLost(err)
	}
	defer pr.destroy(ctl)
	if _, err := pr.p.WrapKey(pr.sh, mech, w, ctl); err != nil {
		s.Detail = fmt.Sprintf("not tested: wrapping an extractable key failed too (%v)", err)
		return s, errLost(err)
	}
	_, err = pr.p.WrapKey(pr.sh, mech, w, h)
	if err == nil {
		s.Detail = "a non-extractable key was wrapped"
		return s, nil
	}
	if e := errLost(err); e != nil {
		return s, e
	}
	s.Enforced, s.Detail = true, fmt.Sprintf("wrapping it was refused (%v) and it cannot be made extractable", err)
	return s, nil
}

func (pr *prober) copyable(s AttributeSupport, h pkcs11.ObjectHandle) (AttributeSupport, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, probeLabel+"-copy")}
	ctl, err := pr.aesKey(pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, true))
	if err != nil {
		s.Detail = fmt.Sprintf("not tested: a copyable key could not be made (%v)", err)
		return s, errLost(err)
	}
	defer pr.destroy(ctl)
	cp, err := pr.p.CopyObject(pr.sh, ctl, tmpl)
	if err != nil {
		s.Detail = fmt.Sprintf("not tested: copying a copyable key failed too (%v)", err)
		return s, errLost(err)
	}
	pr.destroy(cp)
	cp, err = pr.p.CopyObject(pr.sh, h, tmpl)
	if err == nil {
		pr.destroy(cp)
		s.Detail = "a non-copyable key was copied"
		return s, nil
	}
	if e := errLost(err); e != nil {
		return s, e
	}
	s.Enforced, s.Detail = true, fmt.Sprintf("copying it was refused (%v)", err)
	return s, nil
}

func (pr *prober) modifiable(s AttributeSupport, h pkcs11.ObjectHandle) (AttributeSupport, error) {
	label := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, probeLabel+"-changed")}
	ctl, err := pr.aesKey(pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, true))
	if err != nil {
		s.Detail = fmt.Sprintf("not tested: a modifiable key could not be made (%v)", err)
		return s, errLost(err)
	}
	defer pr.destroy(ctl)
	if err := pr.p.SetAttributeValue(pr.sh, ctl, label); err != nil {
		s.Detail = fmt.Sprintf("not tested: changing the label of a modifiable key failed too (%v)", err)
		return s, errLost(err)
	}
	err = pr.p.SetAttributeValue(pr.sh, h, label)
	if err == nil {
		s.Detail = "the label of a non-modifiable key was changed"
		return s, nil
	}
	if e := errLost(err); e != nil {
		return s, e
	}
	s.Enforced, s.Detail = true, fmt.Sprintf("changing its label was refused (%v)", err)
	return s, nil
}

// privateData creates and destroys a private session data object like a
// wallet's.
func (pr *prober) privateData() error {
	h, err := pr.p.CreateObject(pr.sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, Application),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, probeLabel),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, []byte{0}),
	})
	if err != nil {
		return err
	}
	pr.destroy(h)
	return nil
}
