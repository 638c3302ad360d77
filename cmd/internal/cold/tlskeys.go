package cold

import (
	"context"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/hsm/tlskey"
)

// openTLSKey opens the TLS key labelled keyLabel on the token, for a
// service whose configuration names it at key (for messages).
func openTLSKey(ctx context.Context, module, token, keyLabel string, pin *hsm.PIN, key string) (*tlskey.Key, error) {
	k, err := tlskey.Open(ctx, tlskey.Config{Module: module, TokenLabel: token, PIN: pin, KeyLabel: keyLabel})
	if err != nil {
		return nil, explainTLSKey(err, token, keyLabel, key)
	}
	return k, nil
}

// explainTLSKey adds what an operator can do to a tlskey error.
func explainTLSKey(err error, token, keyLabel, key string) error {
	switch {
	case errors.Is(err, tlskey.ErrKeyNotFound):
		return cli.WithHint(fmt.Errorf("%s: no TLS key pair labelled %q on token %q", key, keyLabel, token),
			"make it with 'nanokms token tls-key --label "+keyLabel+"' and have its certificate issued")
	case errors.Is(err, tlskey.ErrDuplicateKey):
		return cli.WithHint(fmt.Errorf("%s: %w", key, err), "the token was changed by another program: an operator must remove the duplicate")
	case errors.Is(err, tlskey.ErrModuleInUse):
		return cli.WithHint(err, "a TLS key must be opened before the keystore token in the same process: report this as a bug")
	case errors.Is(err, hsm.ErrNoCgo):
		return cli.WithHint(errors.New("this nanokms was built without cgo and cannot load a PKCS#11 module"), "rebuild it with CGO_ENABLED=1")
	}
	return HintTokenErr(err)
}
