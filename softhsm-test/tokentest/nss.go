package tokentest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// NSSTokenLabel is the label of NSS softokn's token with a user PIN (its
// other token, "NSS Generic Crypto Services", has no login).
const NSSTokenLabel = "NSS Certificate DB"

// NSSModule returns the path of NSS softokn (libsoftokn3.so), installing
// libnss3 when it is missing.
func NSSModule(t testing.TB) string {
	t.Helper()
	find := func() string {
		if p := firstFile("/usr/lib/x86_64-linux-gnu/libsoftokn3.so", "/usr/lib/aarch64-linux-gnu/libsoftokn3.so", "/usr/lib64/libsoftokn3.so", "/usr/lib/libsoftokn3.so"); p != "" {
			return p
		}
		return fromPackage("libnss3", "/libsoftokn3.so")
	}
	must(t, ensure(func() bool { return find() != "" }, "libnss3"))
	return find()
}

// NSSParams returns the initialisation parameters that make NSS softokn
// open the database in dir.
func NSSParams(dir string) string {
	return fmt.Sprintf("configdir='sql:%s' certPrefix='' keyPrefix='' secmod='secmod.db' flags=", dir)
}

// NewNSS makes an NSS softokn database in dir (which must not hold one)
// with certutil -N, its password (the token's user PIN) PIN, and a wallet
// directory dir/wallets (NSS keeps no data objects). The token is the
// database's "NSS Certificate DB".
func NewNSS(t testing.TB, dir string) Token {
	t.Helper()
	module := NSSModule(t)
	must(t, ensure(func() bool { return haveCmd("certutil") }, "libnss3-tools"))
	db := filepath.Join(dir, "nssdb")
	must(t, os.MkdirAll(db, 0o700))
	pw := filepath.Join(dir, "nss-password")
	must(t, os.WriteFile(pw, []byte(PIN+"\n"), 0o600))
	_, err := run(nil, "certutil", "-N", "-d", "sql:"+db, "-f", pw)
	must(t, err)
	must(t, os.Remove(pw))
	wallets := filepath.Join(dir, "wallets")
	must(t, os.MkdirAll(wallets, 0o700))
	return Token{Kind: NSS, Module: module, ModuleParams: NSSParams(db), Label: NSSTokenLabel, PIN: PIN, WalletDir: wallets}
}
