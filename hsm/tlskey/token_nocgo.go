//go:build !cgo

package tlskey

import (
	"context"
	"crypto"
	"io"

	"github.com/nanokms/nanokms/hsm"
)

// Key is unavailable without cgo: Open and Generate return hsm.ErrNoCgo.
// The methods exist so that code using the package builds with
// CGO_ENABLED=0. See the cgo build for their docs.
type Key struct{}

var _ crypto.Signer = (*Key)(nil)

// Open returns hsm.ErrNoCgo: this binary was built with CGO_ENABLED=0.
func Open(ctx context.Context, cfg Config) (*Key, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, hsm.ErrNoCgo
}

// Generate returns hsm.ErrNoCgo: this binary was built with CGO_ENABLED=0.
func Generate(ctx context.Context, cfg Config) (*Key, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, hsm.ErrNoCgo
}

func (*Key) Public() crypto.PublicKey                                  { return nil }
func (*Key) Label() string                                             { return "" }
func (*Key) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, hsm.ErrNoCgo }
func (*Key) Info(context.Context) (Info, error)                        { return Info{}, hsm.ErrNoCgo }
func (*Key) Destroy() error                                            { return hsm.ErrNoCgo }
func (*Key) Close() error                                              { return nil }
