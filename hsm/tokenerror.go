package hsm

import (
	"errors"
	"fmt"
)

// TokenError is a return value other than CKR_OK from one PKCS#11 call.
// Every such value this package passes on is a *TokenError (possibly
// wrapped): its message names the function and the return code, as in
// "C_GenerateKey: CKR_ATTRIBUTE_TYPE_INVALID". In a cgo build it unwraps to
// the module's pkcs11.Error, so errors.Is(err, pkcs11.Error(pkcs11.CKR_…))
// keeps working.
type TokenError struct {
	// Func is the PKCS#11 function, "C_Initialize" to "C_WrapKey".
	Func string
	// Code is the CK_RV the module returned.
	Code uint
}

// Error returns "FUNC: CKR_NAME".
func (e *TokenError) Error() string { return e.Func + ": " + CodeName(e.Code) }

// Unwrap returns the module's own error value (pkcs11.Error) in a cgo
// build, nil without cgo.
func (e *TokenError) Unwrap() error { return rawCode(e.Code) }

// Hint says what an operator can do about the error, or "" when there is
// nothing general to say.
func (e *TokenError) Hint() string { return hintFor(e.Func, e.Code) }

// TokenErrorHint returns the hint of the first *TokenError in err's chain,
// or "".
func TokenErrorHint(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Hint()
	}
	return ""
}

// Return values (CK_RV) this package names and branches on. They are the
// values of PKCS#11 v3.0; the package pkcs11 of miekg has most of them but
// not all (CKR_ACTION_PROHIBITED, CKR_AEAD_DECRYPT_FAILED), and it is not
// available without cgo.
const (
	ckrOK                         = 0x000
	ckrHostMemory                 = 0x002
	ckrSlotIDInvalid              = 0x003
	ckrGeneralError               = 0x005
	ckrFunctionFailed             = 0x006
	ckrArgumentsBad               = 0x007
	ckrCantLock                   = 0x00A
	ckrAttributeReadOnly          = 0x010
	ckrAttributeSensitive         = 0x011
	ckrAttributeTypeInvalid       = 0x012
	ckrAttributeValueInvalid      = 0x013
	ckrActionProhibited           = 0x01B
	ckrDataInvalid                = 0x020
	ckrDataLenRange               = 0x021
	ckrDeviceError                = 0x030
	ckrDeviceMemory               = 0x031
	ckrDeviceRemoved              = 0x032
	ckrEncryptedDataInvalid       = 0x040
	ckrEncryptedDataLenRange      = 0x041
	ckrAEADDecryptFailed          = 0x035
	ckrFunctionCanceled           = 0x050
	ckrFunctionNotParallel        = 0x051
	ckrFunctionNotSupported       = 0x054
	ckrKeyHandleInvalid           = 0x060
	ckrKeySizeRange               = 0x062
	ckrKeyTypeInconsistent        = 0x063
	ckrKeyNotNeeded               = 0x064
	ckrKeyChanged                 = 0x065
	ckrKeyNeeded                  = 0x066
	ckrKeyIndigestible            = 0x067
	ckrKeyFunctionNotPermitted    = 0x068
	ckrKeyNotWrappable            = 0x069
	ckrKeyUnextractable           = 0x06A
	ckrMechanismInvalid           = 0x070
	ckrMechanismParamInvalid      = 0x071
	ckrObjectHandleInvalid        = 0x082
	ckrOperationActive            = 0x090
	ckrOperationNotInitialized    = 0x091
	ckrPINIncorrect               = 0x0A0
	ckrPINInvalid                 = 0x0A1
	ckrPINLenRange                = 0x0A2
	ckrPINExpired                 = 0x0A3
	ckrPINLocked                  = 0x0A4
	ckrSessionClosed              = 0x0B0
	ckrSessionCount               = 0x0B1
	ckrSessionHandleInvalid       = 0x0B3
	ckrSessionParallelNotSupp     = 0x0B4
	ckrSessionReadOnly            = 0x0B5
	ckrSessionExists              = 0x0B6
	ckrSessionReadOnlyExists      = 0x0B7
	ckrSessionReadWriteSOExists   = 0x0B8
	ckrSignatureInvalid           = 0x0C0
	ckrSignatureLenRange          = 0x0C1
	ckrTemplateIncomplete         = 0x0D0
	ckrTemplateInconsistent       = 0x0D1
	ckrTokenNotPresent            = 0x0E0
	ckrTokenNotRecognized         = 0x0E1
	ckrTokenWriteProtected        = 0x0E2
	ckrUnwrappingKeyHandleInvalid = 0x0F0
	ckrUnwrappingKeySizeRange     = 0x0F1
	ckrUnwrappingKeyTypeIncons    = 0x0F2
	ckrUserAlreadyLoggedIn        = 0x100
	ckrUserNotLoggedIn            = 0x101
	ckrUserPINNotInitialized      = 0x102
	ckrUserTypeInvalid            = 0x103
	ckrUserAnotherAlreadyLoggedIn = 0x104
	ckrUserTooManyTypes           = 0x105
	ckrWrappedKeyInvalid          = 0x110
	ckrWrappedKeyLenRange         = 0x112
	ckrWrappingKeyHandleInvalid   = 0x113
	ckrWrappingKeySizeRange       = 0x114
	ckrWrappingKeyTypeIncons      = 0x115
	ckrRandomSeedNotSupported     = 0x120
	ckrRandomNoRNG                = 0x121
	ckrDomainParamsInvalid        = 0x130
	ckrCurveNotSupported          = 0x140
	ckrBufferTooSmall             = 0x150
	ckrSavedStateInvalid          = 0x160
	ckrInformationSensitive       = 0x170
	ckrStateUnsaveable            = 0x180
	ckrCryptokiNotInitialized     = 0x190
	ckrCryptokiAlreadyInitialized = 0x191
	ckrMutexBad                   = 0x1A0
	ckrMutexNotLocked             = 0x1A1
	ckrNewPINMode                 = 0x1B0
	ckrNextOTP                    = 0x1B1
	ckrExceededMaxIterations      = 0x1B5
	ckrFIPSSelfTestFailed         = 0x1B6
	ckrLibraryLoadFailed          = 0x1B7
	ckrPINTooWeak                 = 0x1B8
	ckrPublicKeyInvalid           = 0x1B9
	ckrFunctionRejected           = 0x200
	ckrOperationCancelFailed      = 0x202
	ckrVendorDefined              = 0x80000000
)

// codeNames are the names of the CK_RV values of PKCS#11 v3.0.
var codeNames = map[uint]string{
	ckrOK:                         "CKR_OK",
	0x001:                         "CKR_CANCEL",
	ckrHostMemory:                 "CKR_HOST_MEMORY",
	ckrSlotIDInvalid:              "CKR_SLOT_ID_INVALID",
	ckrGeneralError:               "CKR_GENERAL_ERROR",
	ckrFunctionFailed:             "CKR_FUNCTION_FAILED",
	ckrArgumentsBad:               "CKR_ARGUMENTS_BAD",
	0x008:                         "CKR_NO_EVENT",
	0x009:                         "CKR_NEED_TO_CREATE_THREADS",
	ckrCantLock:                   "CKR_CANT_LOCK",
	ckrAttributeReadOnly:          "CKR_ATTRIBUTE_READ_ONLY",
	ckrAttributeSensitive:         "CKR_ATTRIBUTE_SENSITIVE",
	ckrAttributeTypeInvalid:       "CKR_ATTRIBUTE_TYPE_INVALID",
	ckrAttributeValueInvalid:      "CKR_ATTRIBUTE_VALUE_INVALID",
	ckrActionProhibited:           "CKR_ACTION_PROHIBITED",
	ckrDataInvalid:                "CKR_DATA_INVALID",
	ckrDataLenRange:               "CKR_DATA_LEN_RANGE",
	ckrDeviceError:                "CKR_DEVICE_ERROR",
	ckrDeviceMemory:               "CKR_DEVICE_MEMORY",
	ckrDeviceRemoved:              "CKR_DEVICE_REMOVED",
	ckrAEADDecryptFailed:          "CKR_AEAD_DECRYPT_FAILED",
	ckrEncryptedDataInvalid:       "CKR_ENCRYPTED_DATA_INVALID",
	ckrEncryptedDataLenRange:      "CKR_ENCRYPTED_DATA_LEN_RANGE",
	ckrFunctionCanceled:           "CKR_FUNCTION_CANCELED",
	ckrFunctionNotParallel:        "CKR_FUNCTION_NOT_PARALLEL",
	ckrFunctionNotSupported:       "CKR_FUNCTION_NOT_SUPPORTED",
	ckrKeyHandleInvalid:           "CKR_KEY_HANDLE_INVALID",
	ckrKeySizeRange:               "CKR_KEY_SIZE_RANGE",
	ckrKeyTypeInconsistent:        "CKR_KEY_TYPE_INCONSISTENT",
	ckrKeyNotNeeded:               "CKR_KEY_NOT_NEEDED",
	ckrKeyChanged:                 "CKR_KEY_CHANGED",
	ckrKeyNeeded:                  "CKR_KEY_NEEDED",
	ckrKeyIndigestible:            "CKR_KEY_INDIGESTIBLE",
	ckrKeyFunctionNotPermitted:    "CKR_KEY_FUNCTION_NOT_PERMITTED",
	ckrKeyNotWrappable:            "CKR_KEY_NOT_WRAPPABLE",
	ckrKeyUnextractable:           "CKR_KEY_UNEXTRACTABLE",
	ckrMechanismInvalid:           "CKR_MECHANISM_INVALID",
	ckrMechanismParamInvalid:      "CKR_MECHANISM_PARAM_INVALID",
	ckrObjectHandleInvalid:        "CKR_OBJECT_HANDLE_INVALID",
	ckrOperationActive:            "CKR_OPERATION_ACTIVE",
	ckrOperationNotInitialized:    "CKR_OPERATION_NOT_INITIALIZED",
	ckrPINIncorrect:               "CKR_PIN_INCORRECT",
	ckrPINInvalid:                 "CKR_PIN_INVALID",
	ckrPINLenRange:                "CKR_PIN_LEN_RANGE",
	ckrPINExpired:                 "CKR_PIN_EXPIRED",
	ckrPINLocked:                  "CKR_PIN_LOCKED",
	ckrSessionClosed:              "CKR_SESSION_CLOSED",
	ckrSessionCount:               "CKR_SESSION_COUNT",
	ckrSessionHandleInvalid:       "CKR_SESSION_HANDLE_INVALID",
	ckrSessionParallelNotSupp:     "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
	ckrSessionReadOnly:            "CKR_SESSION_READ_ONLY",
	ckrSessionExists:              "CKR_SESSION_EXISTS",
	ckrSessionReadOnlyExists:      "CKR_SESSION_READ_ONLY_EXISTS",
	ckrSessionReadWriteSOExists:   "CKR_SESSION_READ_WRITE_SO_EXISTS",
	ckrSignatureInvalid:           "CKR_SIGNATURE_INVALID",
	ckrSignatureLenRange:          "CKR_SIGNATURE_LEN_RANGE",
	ckrTemplateIncomplete:         "CKR_TEMPLATE_INCOMPLETE",
	ckrTemplateInconsistent:       "CKR_TEMPLATE_INCONSISTENT",
	ckrTokenNotPresent:            "CKR_TOKEN_NOT_PRESENT",
	ckrTokenNotRecognized:         "CKR_TOKEN_NOT_RECOGNIZED",
	ckrTokenWriteProtected:        "CKR_TOKEN_WRITE_PROTECTED",
	ckrUnwrappingKeyHandleInvalid: "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
	ckrUnwrappingKeySizeRange:     "CKR_UNWRAPPING_KEY_SIZE_RANGE",
	ckrUnwrappingKeyTypeIncons:    "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
	ckrUserAlreadyLoggedIn:        "CKR_USER_ALREADY_LOGGED_IN",
	ckrUserNotLoggedIn:            "CKR_USER_NOT_LOGGED_IN",
	ckrUserPINNotInitialized:      "CKR_USER_PIN_NOT_INITIALIZED",
	ckrUserTypeInvalid:            "CKR_USER_TYPE_INVALID",
	ckrUserAnotherAlreadyLoggedIn: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
	ckrUserTooManyTypes:           "CKR_USER_TOO_MANY_TYPES",
	ckrWrappedKeyInvalid:          "CKR_WRAPPED_KEY_INVALID",
	ckrWrappedKeyLenRange:         "CKR_WRAPPED_KEY_LEN_RANGE",
	ckrWrappingKeyHandleInvalid:   "CKR_WRAPPING_KEY_HANDLE_INVALID",
	ckrWrappingKeySizeRange:       "CKR_WRAPPING_KEY_SIZE_RANGE",
	ckrWrappingKeyTypeIncons:      "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
	ckrRandomSeedNotSupported:     "CKR_RANDOM_SEED_NOT_SUPPORTED",
	ckrRandomNoRNG:                "CKR_RANDOM_NO_RNG",
	ckrDomainParamsInvalid:        "CKR_DOMAIN_PARAMS_INVALID",
	ckrCurveNotSupported:          "CKR_CURVE_NOT_SUPPORTED",
	ckrBufferTooSmall:             "CKR_BUFFER_TOO_SMALL",
	ckrSavedStateInvalid:          "CKR_SAVED_STATE_INVALID",
	ckrInformationSensitive:       "CKR_INFORMATION_SENSITIVE",
	ckrStateUnsaveable:            "CKR_STATE_UNSAVEABLE",
	ckrCryptokiNotInitialized:     "CKR_CRYPTOKI_NOT_INITIALIZED",
	ckrCryptokiAlreadyInitialized: "CKR_CRYPTOKI_ALREADY_INITIALIZED",
	ckrMutexBad:                   "CKR_MUTEX_BAD",
	ckrMutexNotLocked:             "CKR_MUTEX_NOT_LOCKED",
	ckrNewPINMode:                 "CKR_NEW_PIN_MODE",
	ckrNextOTP:                    "CKR_NEXT_OTP",
	ckrExceededMaxIterations:      "CKR_EXCEEDED_MAX_ITERATIONS",
	ckrFIPSSelfTestFailed:         "CKR_FIPS_SELF_TEST_FAILED",
	ckrLibraryLoadFailed:          "CKR_LIBRARY_LOAD_FAILED",
	ckrPINTooWeak:                 "CKR_PIN_TOO_WEAK",
	ckrPublicKeyInvalid:           "CKR_PUBLIC_KEY_INVALID",
	ckrFunctionRejected:           "CKR_FUNCTION_REJECTED",
	0x201:                         "CKR_TOKEN_RESOURCE_EXCEEDED",
	ckrOperationCancelFailed:      "CKR_OPERATION_CANCEL_FAILED",
	// NSS's vendor codes (CKR_VENDOR_DEFINED | NSSCK_VENDOR_NSS "NSS" | n).
	ckrNSSCertDBFailed: "CKR_NSS_CERTDB_FAILED",
	ckrNSSKeyDBFailed:  "CKR_NSS_KEYDB_FAILED",
}

// NSS softokn's vendor return codes.
const (
	ckrNSSCertDBFailed = 0xCE534351
	ckrNSSKeyDBFailed  = 0xCE534352
)

// CodeName returns the name of a PKCS#11 return value, such as
// "CKR_ATTRIBUTE_TYPE_INVALID", or "CKR_VENDOR_DEFINED+0x12" and
// "CKR_0x1234" for values the standard does not name.
func CodeName(code uint) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	if code >= ckrVendorDefined {
		return fmt.Sprintf("CKR_VENDOR_DEFINED+0x%X", code-ckrVendorDefined)
	}
	return fmt.Sprintf("CKR_0x%X", code)
}

// hintFor is what an operator can do when fn returned code.
func hintFor(fn string, code uint) string {
	switch code {
	case ckrArgumentsBad:
		if fn == "C_Initialize" {
			return "the module may want initialisation parameters: give them with --module-params (token.module_params, $NANOKMS_PKCS11_MODULE_PARAMS); NSS softokn wants configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags="
		}
	case ckrNSSCertDBFailed, ckrNSSKeyDBFailed:
		return "NSS could not open its database: check configdir='sql:DIR' in --module-params (token.module_params); make the database with 'certutil -N -d sql:DIR'"
	case ckrHostMemory:
		if fn == "C_Initialize" {
			return "opencryptoki answers this when its daemon is not running: start pkcsslotd (systemctl start pkcsslotd)"
		}
	case ckrGeneralError, ckrFunctionFailed, ckrDeviceError:
		if fn == "C_Initialize" {
			return "the module loaded but could not start: check that its token store exists and is readable (SoftHSM: directories.tokendir in $SOFTHSM2_CONF; opencryptoki: is pkcsslotd running?; NSS: the configdir of --module-params)"
		}
	case ckrAttributeTypeInvalid:
		return "the token does not know an attribute of the template: 'nanokms token probe' shows which attributes it enforces"
	case ckrAttributeValueInvalid, ckrTemplateInconsistent, ckrTemplateIncomplete:
		return "the token refused a template value: 'nanokms token probe' shows what it accepts"
	case ckrMechanismInvalid, ckrMechanismParamInvalid, ckrFunctionNotSupported:
		return "the token does not offer this mechanism or use of it: 'nanokms token probe' lists what it offers and the seal scheme it can use"
	case ckrKeySizeRange:
		return "the token does not accept this key size: 'nanokms token probe' lists the key sizes of its mechanisms"
	case ckrKeyFunctionNotPermitted:
		return "the key's attributes do not allow this use (another program may have created or changed it)"
	case ckrKeyUnextractable:
		return "the key is not extractable: only a master key made with 'nanokms token init --for-backup', before 'nanokms token finish-backup', can be wrapped"
	case ckrPINLenRange, ckrPINInvalid, ckrPINTooWeak:
		return "the token refused the new PIN's length or characters: 'nanokms token probe' prints the PIN lengths it accepts"
	case ckrPINExpired:
		return "the PIN has expired: change it with 'nanokms token change-pin'"
	case ckrTokenNotPresent, ckrDeviceRemoved:
		return "the token is not there: check that it is connected (and, for a network HSM, reachable)"
	case ckrSessionCount:
		return "the token has no free session: lower token.pool_size or stop other programs using it"
	case ckrDeviceMemory:
		return "the token is out of memory: remove objects it no longer needs"
	case ckrTokenWriteProtected, ckrSessionReadOnly:
		return "the token is write-protected"
	case ckrUserPINNotInitialized:
		return "the token's user PIN is not set: the security officer sets it (C_InitPIN) with the vendor's tool"
	case ckrCryptokiNotInitialized:
		return "the module was finalised by another part of the process"
	}
	return ""
}
