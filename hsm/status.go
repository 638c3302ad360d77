package hsm

import "time"

// Defaults of Config.RecoverMin and Config.RecoverMax.
const (
	DefaultRecoverMin = 100 * time.Millisecond
	DefaultRecoverMax = 5 * time.Second
)

// TokenStatus is what a Token knows of its token's availability.
type TokenStatus struct {
	// Available is false from the moment the token was found gone until
	// recovery succeeds.
	Available bool
	// Cause says why the token is unavailable: what showed it gone, then
	// what the last recovery attempt ran into. Nil while available.
	Cause error
	// Final is true when recovery has stopped for good: the token refused
	// the PIN (errors.Is(Cause, ErrWrongPIN) or ErrPINLocked). The PIN is
	// not sent again; an operator must act, and the process restart.
	Final bool
	// Since is when the token was found gone (zero while available).
	Since time.Time
	// Attempts counts the recovery attempts since then.
	Attempts int
	// Losses counts the times the token was found gone, and Reloads the
	// fresh module instances loaded (or tried), over the Token's life.
	Losses, Reloads int
}
