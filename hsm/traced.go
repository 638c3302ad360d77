//go:build cgo

package hsm

import (
	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/internal/p11slots"
)

// traced is the p11 that Tokens use: every call goes to p, and every
// return value other than CKR_OK comes back as a *TokenError naming the
// function (which still unwraps to the pkcs11.Error).
type traced struct{ p p11 }

var _ p11 = traced{}

func (t traced) GetInfo() (pkcs11.Info, error) {
	r0, err := t.p.GetInfo()
	return r0, traceErr("C_GetInfo", err)
}

func (t traced) GetSlotList(tokenPresent bool) ([]uint, error) {
	r0, err := p11slots.List(t.p.GetSlotList, tokenPresent) // SoftHSM's listings must take turns
	return r0, traceErr("C_GetSlotList", err)
}

func (t traced) GetSlotInfo(slotID uint) (pkcs11.SlotInfo, error) {
	r0, err := t.p.GetSlotInfo(slotID)
	return r0, traceErr("C_GetSlotInfo", err)
}

func (t traced) GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error) {
	r0, err := t.p.GetTokenInfo(slotID)
	return r0, traceErr("C_GetTokenInfo", err)
}

func (t traced) GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error) {
	r0, err := t.p.GetMechanismList(slotID)
	return r0, traceErr("C_GetMechanismList", err)
}

func (t traced) GetMechanismInfo(slotID uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error) {
	r0, err := t.p.GetMechanismInfo(slotID, m)
	return r0, traceErr("C_GetMechanismInfo", err)
}

func (t traced) OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error) {
	r0, err := t.p.OpenSession(slotID, flags)
	return r0, traceErr("C_OpenSession", err)
}

func (t traced) CloseSession(sh pkcs11.SessionHandle) error {
	return traceErr("C_CloseSession", t.p.CloseSession(sh))
}

func (t traced) GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
	r0, err := t.p.GetSessionInfo(sh)
	return r0, traceErr("C_GetSessionInfo", err)
}

func (t traced) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	return traceErr("C_Login", t.p.Login(sh, userType, pin))
}

func (t traced) SetPIN(sh pkcs11.SessionHandle, oldPIN, newPIN string) error {
	return traceErr("C_SetPIN", t.p.SetPIN(sh, oldPIN, newPIN))
}

func (t traced) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	return traceErr("C_FindObjectsInit", t.p.FindObjectsInit(sh, temp))
}

func (t traced) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	r0, r1, err := t.p.FindObjects(sh, max)
	return r0, r1, traceErr("C_FindObjects", err)
}

func (t traced) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	return traceErr("C_FindObjectsFinal", t.p.FindObjectsFinal(sh))
}

func (t traced) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	r0, err := t.p.GetAttributeValue(sh, o, a)
	return r0, traceErr("C_GetAttributeValue", err)
}

func (t traced) SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error {
	return traceErr("C_SetAttributeValue", t.p.SetAttributeValue(sh, o, a))
}

func (t traced) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	r0, err := t.p.CreateObject(sh, temp)
	return r0, traceErr("C_CreateObject", err)
}

func (t traced) CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	r0, err := t.p.CopyObject(sh, o, temp)
	return r0, traceErr("C_CopyObject", err)
}

func (t traced) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	return traceErr("C_DestroyObject", t.p.DestroyObject(sh, oh))
}

func (t traced) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	r0, err := t.p.GenerateKey(sh, m, temp)
	return r0, traceErr("C_GenerateKey", err)
}

func (t traced) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	r0, r1, err := t.p.GenerateKeyPair(sh, m, public, private)
	return r0, r1, traceErr("C_GenerateKeyPair", err)
}

func (t traced) GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error) {
	r0, err := t.p.GenerateRandom(sh, length)
	return r0, traceErr("C_GenerateRandom", err)
}

func (t traced) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	return traceErr("C_EncryptInit", t.p.EncryptInit(sh, m, o))
}

func (t traced) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	r0, err := t.p.Encrypt(sh, message)
	return r0, traceErr("C_Encrypt", err)
}

func (t traced) EncryptUpdate(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	r0, err := t.p.EncryptUpdate(sh, message)
	return r0, traceErr("C_EncryptUpdate", err)
}

func (t traced) EncryptFinal(sh pkcs11.SessionHandle) ([]byte, error) {
	r0, err := t.p.EncryptFinal(sh)
	return r0, traceErr("C_EncryptFinal", err)
}

func (t traced) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	return traceErr("C_DecryptInit", t.p.DecryptInit(sh, m, o))
}

func (t traced) DecryptInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error) {
	r0, err := t.p.DecryptInto(sh, cipher, dst)
	return r0, traceErr("C_Decrypt", err)
}

func (t traced) DecryptUpdateInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error) {
	r0, err := t.p.DecryptUpdateInto(sh, cipher, dst)
	return r0, traceErr("C_DecryptUpdate", err)
}

func (t traced) DecryptFinalInto(sh pkcs11.SessionHandle, dst []byte) ([]byte, error) {
	r0, err := t.p.DecryptFinalInto(sh, dst)
	return r0, traceErr("C_DecryptFinal", err)
}

func (t traced) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	return traceErr("C_SignInit", t.p.SignInit(sh, m, o))
}

func (t traced) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	r0, err := t.p.Sign(sh, message)
	return r0, traceErr("C_Sign", err)
}

func (t traced) VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	return traceErr("C_VerifyInit", t.p.VerifyInit(sh, m, o))
}

func (t traced) Verify(sh pkcs11.SessionHandle, data, signature []byte) error {
	return traceErr("C_Verify", t.p.Verify(sh, data, signature))
}

func (t traced) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrappingkey, key pkcs11.ObjectHandle) ([]byte, error) {
	r0, err := t.p.WrapKey(sh, m, wrappingkey, key)
	return r0, traceErr("C_WrapKey", err)
}

func (t traced) UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	r0, err := t.p.UnwrapKey(sh, m, unwrappingkey, wrappedkey, a)
	return r0, traceErr("C_UnwrapKey", err)
}
