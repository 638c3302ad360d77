package hsm

import (
	"time"

	"github.com/nanokms/nanokms/internal/keystore"
)

// Defaults of Config.RecoverMin and Config.RecoverMax.
const (
	DefaultRecoverMin = 100 * time.Millisecond
	DefaultRecoverMax = 5 * time.Second
)

// TokenStatus is what a Token knows of its token's availability
// (Token.Status): the key store contract's status. Final is set when the
// token refused the PIN (errors.Is(Cause, ErrWrongPIN) or ErrPINLocked,
// both keystore.ErrPINRefused).
type TokenStatus = keystore.TokenStatus
