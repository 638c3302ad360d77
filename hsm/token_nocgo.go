//go:build !cgo

package hsm

import (
	"context"

	"github.com/nanokms/nanokms/nano"
)

var _ KeyStore = (*Token)(nil)

// PKCS11 reports whether this build can open PKCS#11 tokens: false
// without cgo (Open returns ErrNoCgo); true in the cgo build.
const PKCS11 = false

// Token is unavailable without cgo; Open returns ErrNoCgo. The methods
// exist so that code using the package builds with CGO_ENABLED=0; each
// returns ErrNoCgo (Close returns nil). See the cgo build for their docs.
type Token struct{}

// Open returns ErrNoCgo: this binary was built with CGO_ENABLED=0.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, ErrNoCgo
}

// rawCode has no module-level error value without cgo.
func rawCode(uint) error { return nil }

func (*Token) Close() error                                               { return nil }
func (*Token) Status() TokenStatus                                        { return TokenStatus{Cause: ErrNoCgo, Final: true} }
func (*Token) Available() (bool, <-chan struct{})                         { return false, nil }
func (*Token) Check(context.Context) error                                { return ErrNoCgo }
func (*Token) CreateMasterKey(context.Context, SealScheme) error          { return ErrNoCgo }
func (*Token) CreateMasterKeyForBackup(context.Context, SealScheme) error { return ErrNoCgo }
func (*Token) FinishMasterKeyBackup(context.Context) error                { return ErrNoCgo }
func (*Token) Capabilities() Capabilities                                 { return Capabilities{} }
func (*Token) SessionCopy() SessionCopy                                   { return SessionCopy{Reason: ErrNoCgo.Error()} }
func (*Token) ProbeWalletStorage(context.Context) (WalletStorage, error) {
	return WalletStorage{}, ErrNoCgo
}
func (*Token) BackupTarget() BackupTarget            { return BackupTarget{} }
func (*Token) WalletDir() string                     { return "" }
func (*Token) ChangePIN(context.Context, *PIN) error { return ErrNoCgo }
func (*Token) MasterKeyAttributes(context.Context) (MasterKeyInfo, error) {
	return MasterKeyInfo{}, ErrNoCgo
}
func (*Token) MasterKeyScheme(context.Context) (SealScheme, error) { return 0, ErrNoCgo }
func (*Token) CreateTransportKey(context.Context) ([]byte, error)  { return nil, ErrNoCgo }
func (*Token) WrapMasterKey(context.Context, []byte, BackupTarget) ([]byte, error) {
	return nil, ErrNoCgo
}
func (*Token) ImportMasterKey(context.Context, []byte) error { return ErrNoCgo }
func (*Token) CreateWallet(context.Context, string) (WalletInfo, error) {
	return WalletInfo{}, ErrNoCgo
}
func (*Token) ImportWallet(context.Context, string, *nano.Seed) (WalletInfo, error) {
	return WalletInfo{}, ErrNoCgo
}
func (*Token) ImportMnemonic(context.Context, string, []byte, []byte) (WalletInfo, error) {
	return WalletInfo{}, ErrNoCgo
}
func (*Token) ListWallets(context.Context) ([]WalletInfo, error)    { return nil, ErrNoCgo }
func (*Token) Wallet(context.Context, string) (WalletInfo, error)   { return WalletInfo{}, ErrNoCgo }
func (*Token) ExportWallet(context.Context, string) ([]byte, error) { return nil, ErrNoCgo }
func (*Token) RestoreWallet(context.Context, string, []byte) (WalletInfo, error) {
	return WalletInfo{}, ErrNoCgo
}
func (*Token) PublicKey(context.Context, string, uint32) (nano.PublicKey, error) {
	return nano.PublicKey{}, ErrNoCgo
}
func (*Token) Sign(context.Context, string, uint32, nano.Hash) (nano.Signature, error) {
	return nano.Signature{}, ErrNoCgo
}
func (*Token) SignFor(context.Context, string, uint32, nano.PublicKey, nano.Hash) (nano.Signature, error) {
	return nano.Signature{}, ErrNoCgo
}
