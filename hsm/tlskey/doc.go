// Package tlskey keeps the cold side's TLS identities on a PKCS#11 token:
// the signer's server key and the relay's client key for mutual TLS are
// ECDSA P-256 key pairs generated on the token, whose private half never
// leaves it. The TLS handshake signs through crypto11's crypto.Signer
// (github.com/ThalesGroup/crypto11); package mtls takes the Key as a
// crypto.Signer and never needs cgo.
//
// # Objects on the token
//
// Generate makes one key pair labelled Config.KeyLabel, with a 16-byte
// CKA_ID from the token's RNG shared by both halves. The private key is
// CKA_SENSITIVE, not CKA_EXTRACTABLE, private, not modifiable, and can only
// sign (CKM_ECDSA): no decrypt, unwrap, derive or sign-recover
// (privateTemplate lists and explains every attribute). Generate refuses a
// label that a private key, a secret key or a certificate already
// carries. Open finds exactly one ECDSA key pair by label (ErrKeyNotFound
// for none, ErrDuplicateKey for more).
//
// # One module, two PKCS#11 users in one process
//
// The signer opens its keystore token through package hsm and its TLS key
// through crypto11, often in the same module. Package hsm loads a module
// once per process and C_Initializes it once, accepting
// CKR_CRYPTOKI_ALREADY_INITIALIZED, and never finalises it. crypto11 keeps
// a registry of its own: the first crypto11 Context on a module path calls
// C_Initialize and fails on any error, CKR_CRYPTOKI_ALREADY_INITIALIZED
// included, and the Close of the last crypto11 Context on a path calls
// C_Finalize, which would end every session and login of the process,
// package hsm's too. Hence the rules this package keeps:
//
//   - In a process, open TLS keys before anything else initialises the
//     same module (hsm.Open, a test helper). crypto11 then initialises it
//     and package hsm accepts that. In the other order crypto11 cannot
//     start: Open and Generate return ErrModuleInUse, and nothing was
//     finalised (crypto11 only unloads its own handle after a failed
//     C_Initialize). `nanokms signer` opens its TLS key first.
//   - crypto11 is never allowed to finalise. This package keeps one
//     crypto11 Context per token for the life of the process (a registry
//     keyed by the module's resolved path and the token label) and never
//     calls its Close; Key.Close only stops that Key. So crypto11's count
//     of Contexts on a module never drops to zero once one has started.
//     A crypto11 Context that fails while starting (wrong PIN, no such
//     token) finalises the module only when it was the first on the
//     module: then package hsm has not loaded it either (crypto11's
//     C_Initialize would have failed), as long as TLS keys are opened
//     first and not concurrently with hsm.Open.
//   - The module path is made absolute and symlinks are resolved, as
//     package hsm does, so both registries name a module the same way.
//   - Modules that need C_Initialize arguments (NSS softokn's configdir)
//     cannot be used here: crypto11 always initialises with none.
//
// # Login and the PIN
//
// The first Open or Generate of a token logs in once (CKU_USER) on
// crypto11's long-lived session; a login the process already holds
// (CKR_USER_ALREADY_LOGGED_IN, when package hsm logged in to the same
// token first) is accepted. A refused PIN is hsm.ErrWrongPIN and is never
// retried; a locked one is hsm.ErrPINLocked. Later Opens of the same token
// reuse the login without sending a PIN, as C_Login itself does for a
// process already logged in. The PIN comes from the caller's hsm.PIN
// (hsm.ReadPIN: a file or the environment, never argv). crypto11 wants it
// as a Go string in its Config: this package passes a string that aliases
// the hsm.PIN's locked memory (no copy on the Go heap) and clears that
// Config field as soon as crypto11's Configure returns, so crypto11 keeps
// no reference to it (it reads the PIN only to log in). What is left out
// of our reach: pkcs11.Ctx.Login copies the PIN into C memory for the call
// and frees it unwiped, and the module keeps whatever it keeps.
//
// # Sessions and concurrent handshakes
//
// Each token's crypto11 Context holds one long-lived session (which keeps
// the login and the object handles valid) and a pool of at most
// Config.Sessions signing sessions (DefaultSessions, 2), opened on demand
// and kept. A TLS 1.3 handshake makes one signature on each side (the
// CertificateVerify), so handshakes run concurrently up to that many
// signatures at a time; the others wait for a session for at most
// SessionWait and then fail the handshake (gRPC redials). The bound is
// deliberate: the signer signs its CertificateVerify before it has seen
// the client's certificate, so anyone who reaches its port can make it
// sign, and those signatures must not take the token away from package
// hsm's own pool (token.pool_size sessions), which is separate. A token
// that limits sessions must allow pool_size + Sessions + 1 for the signer.
//
// crypto11 does not recover lost sessions: after the token was removed
// and came back, signatures fail (ErrSessionLost) until the process
// restarts. Established connections are not affected; only new handshakes
// fail.
//
// # What this package must never do
//
// It never logs, never puts a PIN into an error, never calls crypto11's
// Close, never C_Finalizes, and never creates a key under a label in use.
//
// cgo is needed to load a PKCS#11 module. Built with CGO_ENABLED=0 the
// package compiles, and Open and Generate return hsm.ErrNoCgo.
package tlskey
