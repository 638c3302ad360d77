// Package hsm keeps nanokms's Nano keys behind a PKCS#11 token.
//
// No PKCS#11 mechanism computes Nano's signature (Ed25519 with BLAKE2b-512),
// so the token does not sign. It holds one master key, an AES-256 key
// generated on the token that never leaves it, and seals every wallet secret
// under that key with AES-GCM. To sign, the package has the token unseal
// the wallet's secret into locked memory, derives the account key, signs
// with package nano, and wipes the secret and key, for every signature.
//
// # Objects on the token
//
// The master key is a secret key labelled MasterKeyLabel ("nanokms-master-v1"):
// CKA_SENSITIVE, not CKA_EXTRACTABLE, private, usable only to encrypt and
// decrypt, with a CKA_ID from the token's RNG (masterKeyTemplate lists and
// explains every attribute). A wallet is a private data object
// (CKO_DATA, CKA_APPLICATION "nanokms", CKA_LABEL = the wallet's label) whose
// CKA_VALUE is a versioned sealed blob: version, kind, a random 16-byte
// wallet id, a 12-byte IV from the token's RNG, and the AES-256-GCM
// ciphertext and 128-bit tag of the secret, with the domain string, wallet
// id, version and kind as associated data (blob.go has the layout).
//
// Two kinds of wallet exist. A "seed" wallet seals a 32-byte Nano seed;
// account i's private key is BLAKE2b-256(seed ‖ uint32-BE(i)). A "bip39"
// wallet (ImportMnemonic) seals the 64-byte BIP39 seed of a mnemonic and
// passphrase; account i's private key is the SLIP-0010 ed25519 key at
// m/44'/165'/i', as Nault, the Ledger Nano app and nanocurrency-web derive
// it. Storing the BIP39 seed, not one derived key, keeps every account of
// the mnemonic usable.
//
// Backups: ExportWallet and RestoreWallet move sealed blobs (ciphertext) to
// a token holding the same master key; the master key itself reaches backup
// tokens only through the wrap ceremony (CreateTransportKey,
// CreateMasterKeyForBackup, WrapMasterKey, FinishMasterKeyBackup,
// ImportMasterKey), wrapped token-to-token. docs/KEYS.md is the operator's
// guide and threat model.
//
// # Session rules
//
//   - A module is loaded and C_Initialize'd once per path per process and
//     never finalised; tokens are found by label (fail on none, or on more
//     than one) or by serial, never by slot id, which changes when a token
//     is initialised.
//   - Open logs in with exactly one C_Login. A wrong PIN (CKR_PIN_INCORRECT)
//     returns ErrWrongPIN and is never retried, by Open or later: the token
//     locks after a few failures. CKR_USER_ALREADY_LOGGED_IN is success.
//   - The PIN comes from a file accessible to its owner only or an
//     environment variable, which is then cleared from the process's
//     environment block too (ReadPIN); never from the command line. It
//     lives in locked memory.
//   - A Token holds a bounded pool of sessions (Config.PoolSize, default 4).
//     A session that fails with CKR_SESSION_HANDLE_INVALID,
//     CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT or
//     CKR_USER_NOT_LOGGED_IN is closed and the operation runs once more on
//     a new session, which logs in again (same PIN) if the process's login
//     went with the lost sessions; a second failure is ErrSessionLost.
//   - Lookups are exact: C_FindObjectsInit, C_FindObjects for two,
//     C_FindObjectsFinal always; none is "not found", two is
//     ErrDuplicateObject. Nothing is created under a label that exists.
//   - Close waits for running operations, closes the sessions and never
//     calls C_Logout; it is idempotent. Calls after it return ErrClosed.
//   - Return codes are compared with errors.Is(err, pkcs11.Error(code)),
//     never by text.
//
// # What this package must never do
//
// It never logs or prints anything, and never puts a PIN, seed, mnemonic,
// passphrase or key into an error, a String method or a panic. It never
// retries a failed login, never calls C_Logout, never seals under or
// unseals with a master key that is still extractable, and never keeps an
// unsealed secret or derived key after the call that needed it.
//
// Limits: secrets pass through memory this package does not control: the
// PKCS#11 library's own buffers (pkcs11.Ctx copies a decrypted secret into
// C memory and frees it without wiping), Go's HMAC state during BIP39 and
// SLIP-0010 derivation, and package nano's expanded signing key on the heap
// (wiped after each signature). A host that an attacker controls while it
// signs is out of scope: see docs/KEYS.md.
//
// cgo is needed to load a PKCS#11 module. Built with CGO_ENABLED=0 the
// package compiles, and Open returns ErrNoCgo.
package hsm
