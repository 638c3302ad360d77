//go:build cgo

package hsm

// The calls whose output size this package must handle itself. pkcs11.Ctx
// (miekg/pkcs11 v1.1.2) sizes an output buffer exactly as the module's
// NULL-buffer query answers; NSS softokn 3.87 answers AES-GCM's query with
// the plaintext length, without the tag, then fails the real call with
// CKR_BUFFER_TOO_SMALL and ends the operation. Decrypt there also lands
// the plaintext in C memory that is freed without being wiped. So these
// few calls go through the module's function list directly: the buffer is
// the larger of the module's answer and a bound that always holds for the
// mechanisms nanokms uses, and output passes through C memory that is
// wiped before it is freed, on its way into the caller's (locked) memory.
//
// The declarations below are the start of CK_FUNCTION_LIST as PKCS#11
// v2.40 and v3.0 define it (a CK_VERSION, then the function pointers in
// the standard's order); only the entries up to C_DecryptFinal are named.
// Unix modules use the platform's natural alignment.

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef unsigned long nk_ulong;
typedef nk_ulong nk_rv;

typedef nk_rv (*nk_crypt_fn)(nk_ulong session, unsigned char *in, nk_ulong inlen, unsigned char *out, nk_ulong *outlen);
typedef nk_rv (*nk_final_fn)(nk_ulong session, unsigned char *out, nk_ulong *outlen);

struct nk_function_list {
	unsigned char major, minor;
	void *initialize, *finalize, *get_info, *get_function_list;
	void *get_slot_list, *get_slot_info, *get_token_info, *get_mechanism_list;
	void *get_mechanism_info, *init_token, *init_pin, *set_pin;
	void *open_session, *close_session, *close_all_sessions, *get_session_info;
	void *get_operation_state, *set_operation_state, *login, *logout;
	void *create_object, *copy_object, *destroy_object, *get_object_size;
	void *get_attribute_value, *set_attribute_value, *find_objects_init, *find_objects;
	void *find_objects_final, *encrypt_init;
	nk_crypt_fn encrypt, encrypt_update;
	nk_final_fn encrypt_final;
	void *decrypt_init;
	nk_crypt_fn decrypt, decrypt_update;
	nk_final_fn decrypt_final;
};

typedef nk_rv (*nk_get_function_list_fn)(struct nk_function_list **);

// nk_function_list returns the function list of the module at path, which
// must already be loaded (RTLD_NOLOAD): the same one pkcs11.Ctx uses. The
// handle is never closed. *rv is set when C_GetFunctionList fails.
static struct nk_function_list *nk_load(const char *path, nk_rv *rv) {
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL) {
		return NULL;
	}
	nk_get_function_list_fn get = (nk_get_function_list_fn)dlsym(h, "C_GetFunctionList");
	if (get == NULL) {
		return NULL;
	}
	struct nk_function_list *fl = NULL;
	*rv = get(&fl);
	if (*rv != 0) {
		return NULL;
	}
	return fl;
}

static nk_rv nk_crypt(nk_crypt_fn f, nk_ulong s, unsigned char *in, nk_ulong inlen, unsigned char *out, nk_ulong *outlen) {
	return f(s, in, inlen, out, outlen);
}

static nk_rv nk_final(nk_final_fn f, nk_ulong s, unsigned char *out, nk_ulong *outlen) {
	return f(s, out, outlen);
}

static nk_crypt_fn nk_pick_crypt(struct nk_function_list *fl, int which) {
	switch (which) {
	case 0: return fl->encrypt;
	case 1: return fl->encrypt_update;
	case 2: return fl->decrypt;
	case 3: return fl->decrypt_update;
	}
	return NULL;
}

static nk_final_fn nk_pick_final(struct nk_function_list *fl, int which) {
	return which == 0 ? fl->encrypt_final : fl->decrypt_final;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// fnList is a module's function list, for the calls described above.
type fnList struct {
	fl *C.struct_nk_function_list
}

// loadFnList returns the function list of the already loaded module at
// path.
func loadFnList(path string) (*fnList, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var rv C.nk_rv
	fl := C.nk_load(cs, &rv)
	if fl == nil {
		if rv != 0 {
			return nil, &TokenError{Func: "C_GetFunctionList", Code: uint(rv)}
		}
		return nil, errors.New("the module has no C_GetFunctionList")
	}
	return &fnList{fl: fl}, nil
}

// cryptSlack bounds how much longer than its input an encryption's output
// is for the mechanisms nanokms uses: a GCM tag (16 bytes) or CBC padding
// (up to 16 bytes), with room to spare.
const cryptSlack = 64

const (
	opEncrypt = iota
	opEncryptUpdate
	opDecrypt
	opDecryptUpdate
)

var cryptNames = [...]string{"C_Encrypt", "C_EncryptUpdate", "C_Decrypt", "C_DecryptUpdate"}

// cbuf is C memory for one call's output. It is wiped before it is freed.
type cbuf struct {
	p *C.uchar
	n int
}

func newCBuf(n int) cbuf {
	if n < 1 {
		n = 1
	}
	return cbuf{p: (*C.uchar)(C.calloc(C.size_t(n), 1)), n: n}
}

func (b cbuf) bytes(n int) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(b.p)), b.n)[:n] }

func (b cbuf) free() {
	clear(unsafe.Slice((*byte)(unsafe.Pointer(b.p)), b.n))
	C.free(unsafe.Pointer(b.p))
}

// cIn copies in to C memory (wiped and freed by the caller).
func cIn(in []byte) cbuf {
	b := newCBuf(len(in))
	copy(b.bytes(len(in)), in)
	return b
}

// crypt runs one of the four data calls with the two-call convention: a
// NULL-buffer query, then the call with a buffer of at least the answer
// and at least len(in)+cryptSlack bytes. When the module still says
// CKR_BUFFER_TOO_SMALL and asks for more, the call is made once more with
// what it asked for (the standard keeps the operation alive then; a module
// that ends it answers CKR_OPERATION_NOT_INITIALIZED, and the first error
// is returned). The output is copied into dst when it fits (len(dst) is
// its capacity, and the copy in C memory is wiped), otherwise returned in
// a new slice (dst nil).
func (f *fnList) crypt(op int, sh pkcs11.SessionHandle, in, dst []byte) ([]byte, error) {
	fn := C.nk_pick_crypt(f.fl, C.int(op))
	name := cryptNames[op]
	if fn == nil {
		return nil, &TokenError{Func: name, Code: ckrFunctionNotSupported}
	}
	cin := cIn(in)
	defer cin.free()
	var n C.nk_ulong
	if rv := C.nk_crypt(fn, C.nk_ulong(sh), cin.p, C.nk_ulong(len(in)), nil, &n); rv != 0 {
		return nil, &TokenError{Func: name, Code: uint(rv)}
	}
	size := int(n)
	if size < len(in)+cryptSlack {
		size = len(in) + cryptSlack
	}
	out := newCBuf(size)
	defer func() { out.free() }()
	n = C.nk_ulong(size)
	rv := C.nk_crypt(fn, C.nk_ulong(sh), cin.p, C.nk_ulong(len(in)), out.p, &n)
	if rv == ckrBufferTooSmall && int(n) > size && int(n) < 1<<20 {
		first := &TokenError{Func: name, Code: uint(rv)}
		out.free()
		size = int(n)
		out = newCBuf(size)
		if rv = C.nk_crypt(fn, C.nk_ulong(sh), cin.p, C.nk_ulong(len(in)), out.p, &n); rv != 0 {
			return nil, first
		}
	}
	if rv != 0 {
		return nil, &TokenError{Func: name, Code: uint(rv)}
	}
	return deliver(out, int(n), dst, name)
}

// final runs C_EncryptFinal (op opEncrypt) or C_DecryptFinal (opDecrypt)
// like crypt.
func (f *fnList) final(op int, sh pkcs11.SessionHandle, dst []byte) ([]byte, error) {
	which, name := 0, "C_EncryptFinal"
	if op == opDecrypt {
		which, name = 1, "C_DecryptFinal"
	}
	fn := C.nk_pick_final(f.fl, C.int(which))
	if fn == nil {
		return nil, &TokenError{Func: name, Code: ckrFunctionNotSupported}
	}
	var n C.nk_ulong
	if rv := C.nk_final(fn, C.nk_ulong(sh), nil, &n); rv != 0 {
		return nil, &TokenError{Func: name, Code: uint(rv)}
	}
	size := int(n)
	if size < cryptSlack {
		size = cryptSlack
	}
	out := newCBuf(size)
	defer out.free()
	n = C.nk_ulong(size)
	if rv := C.nk_final(fn, C.nk_ulong(sh), out.p, &n); rv != 0 {
		return nil, &TokenError{Func: name, Code: uint(rv)}
	}
	return deliver(out, int(n), dst, name)
}

func deliver(out cbuf, n int, dst []byte, name string) ([]byte, error) {
	if n > out.n {
		return nil, fmt.Errorf("hsm: %s reported %d bytes written into a %d-byte buffer", name, n, out.n)
	}
	if dst == nil {
		return append([]byte(nil), out.bytes(n)...), nil
	}
	if n > len(dst) {
		return nil, fmt.Errorf("hsm: %s returned %d bytes, more than the %d expected", name, n, len(dst))
	}
	copy(dst, out.bytes(n))
	return dst[:n], nil
}
