// Package hsm keeps nanokms's Nano keys behind a PKCS#11 token.
//
// No PKCS#11 mechanism computes Nano's signature (Ed25519 with BLAKE2b-512),
// so the token does not sign. It holds one master key, an AES-256 key
// generated on the token that never leaves it, and seals every wallet secret
// under that key in the token's seal scheme: AES-256-GCM where the token
// has it, else AES-256-CBC-PAD with HMAC-SHA-256 under a second key on the
// token, encrypt-then-MAC, the MAC checked on the token before anything is
// decrypted (SealScheme). To sign, the package has the token unseal the
// wallet's secret into locked memory, derives the account key, signs with
// package nano, and wipes the secret and key, for every signature.
//
// # What a token offers is probed, never assumed
//
// Open reads the token's mechanisms and description and tries, on
// throw-away session objects in a session of its own, each seal scheme and
// each protective attribute (sensitive, extractable, copyable, destroyable,
// modifiable, private); Token.Capabilities returns the findings. An
// attribute a token does not know (CKR_ATTRIBUTE_TYPE_INVALID) is left out
// of every template for that token, as are CKA_COPYABLE and
// CKA_DESTROYABLE where it knows but does not enforce them; all are
// reported. A failed seal is told from a fault by its return code: the
// standard ones, plus the one the probe saw this token give for a tampered
// GCM tag; a MAC refused with another code is recomputed on the token and
// compared. Every return code reaches callers as a *TokenError naming the
// function and the code. docs/HSM.md lists what the tested tokens do.
//
// # Objects on the token
//
// The master key is a secret key labelled MasterKeyLabel ("nanokms-master-v1"):
// CKA_SENSITIVE, not CKA_EXTRACTABLE, private, usable only to encrypt and
// decrypt, with a CKA_ID from the token's RNG (masterKeyTemplate lists and
// explains every attribute). A wallet is a private data object
// (CKO_DATA, CKA_APPLICATION "nanokms", CKA_LABEL = the wallet's label) whose
// CKA_VALUE is a versioned sealed blob naming its scheme: version, scheme,
// kind, a random 16-byte wallet id, the IV, and the sealed secret, with
// everything but the secret bound (blob.go has the layouts; version 1,
// written before seal schemes, is still read). For the scheme
// aes-256-cbc-pad+hmac-sha-256 the HMAC key, MACKeyLabel, sits beside the
// master key. A token that keeps no data objects (NSS softokn) keeps the
// wallets in a wallet directory beside it (Config.WalletDir, walletdir.go).
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
//   - A module is loaded and C_Initialize'd once per path per process, with
//     Config.ModuleParams in CK_C_INITIALIZE_ARGS.pReserved when given, and
//     never finalised; the same library with other parameters is refused.
//     A library that does not load is ErrModule; one whose C_Initialize
//     fails is ErrModuleInit. Tokens are found by label, serial or PKCS#11
//     URI (fail on none, or on more than one), never by slot id alone,
//     which changes when a token is initialised.
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
//   - A token that goes away while a Token runs (pulled out, its
//     connection or its store lost, its objects no longer visible) makes
//     the Token unavailable: an operation that fails in a way the
//     token's absence could explain, a "wallet not found" included, is
//     followed by a look at the token (slot, label, serial, a session,
//     the master key it showed before); if it is gone, that operation and
//     every later one return ErrTokenUnavailable at once, and one
//     goroutine reconnects with a capped exponential backoff (package
//     backoff; Config.RecoverMin, RecoverMax): every session closed, the
//     token found again by label, serial and URI (its slot id may have
//     changed), a session opened, exactly one C_Login if it is not logged
//     in, the same master key (same CKA_ID) checked. A PIN the token
//     refuses then stops recovery for good. Token.Available,
//     Token.Status and Token.Check let a service follow it.
//   - A module instance that no longer sees a token which a fresh process
//     of the same module does see (SoftHSM 2.6 never sees a vanished
//     token directory again) is left as it is, never finalised: the Token
//     loads a fresh instance of the module beside it, from an in-memory
//     copy of the library, initialises it with the same parameters and
//     continues there (recover.go, reload_linux.go, presence.go: the
//     fresh process is this executable run again, stopped in this
//     package's init). Config.NoModuleReload turns that off.
//   - Lookups are exact: C_FindObjectsInit, C_FindObjects for two,
//     C_FindObjectsFinal always; none is "not found", two is
//     ErrDuplicateObject. Nothing is created under a label that exists.
//   - Where the token allows it (the master key is not held
//     non-copyable), a Token unseals with a session-object copy of the
//     master keys (C_CopyObject, CKA_TOKEN false), made in a session of
//     its own that stays open with it, read back as sensitive,
//     non-extractable and private with the key's CKA_ID, and shown to
//     open a seal made with the token object before use; an unseal that
//     fails with it is made again with the token object, and the copy is
//     dropped and made anew. Seals use the token object.
//     Token.SessionCopy reports it; sessioncopy.go has the rules.
//   - Close waits for running operations, destroys the session copy,
//     closes the sessions and never calls C_Logout; it is idempotent.
//     Calls after it return ErrClosed.
//   - Return codes are compared with errors.Is(err, pkcs11.Error(code)),
//     never by text.
//
// # What this package must never do
//
// It never logs or prints anything (a presence probe process prints its
// one-line answer for its parent), and never puts a PIN, seed, mnemonic,
// passphrase or key into an error, a String method or a panic. It never
// retries a login the token refused, never calls C_Logout or C_Finalize,
// never seals under or unseals with a master key that is still
// extractable, and never keeps an unsealed secret or derived key after
// the call that needed it.
//
// Limits: secrets pass through memory this package does not control: the
// PKCS#11 library's own buffers (the decrypt calls go through the module's
// function list, fnlist_cgo.go, into C memory this package wipes), Go's
// HMAC state during BIP39 and
// SLIP-0010 derivation, and package nano's expanded signing key on the heap
// (wiped after each signature). A host that an attacker controls while it
// signs is out of scope: see docs/KEYS.md.
//
// cgo is needed to load a PKCS#11 module. Built with CGO_ENABLED=0 the
// package compiles, and Open returns ErrNoCgo.
package hsm
