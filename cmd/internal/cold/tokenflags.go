package cold

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/internal/p11uri"
	"github.com/spf13/cobra"
)

// The environment variables the token flags fall back to. The PIN itself
// may come from the environment (never from argv); hsm.ReadPIN removes it
// from the process environment once read (Go's, and the environment block
// /proc/PID/environ shows).
const (
	envModule       = "NANOKMS_PKCS11_MODULE"
	envModuleParams = "NANOKMS_PKCS11_MODULE_PARAMS"
	envToken        = "NANOKMS_TOKEN"
	envWalletDir    = "NANOKMS_WALLET_DIR"
	envPIN          = "NANOKMS_PIN"
)

// tokenFlagsHelp is appended to the Long help of every command that opens
// the token.
const tokenFlagsHelp = `

The token is the PKCS#11 token labelled --token (or $NANOKMS_TOKEN) in the
module --module (or $NANOKMS_PKCS11_MODULE); --token may also be a PKCS#11
URI (RFC 7512), such as pkcs11:token=signer;serial=8f3c1a, whose
module-path names the module. A module that wants initialisation
parameters (NSS softokn: configdir=...) gets them from --module-params (or
$NANOKMS_PKCS11_MODULE_PARAMS). Wallets are data objects on the token, or
files in --wallet-dir (or $NANOKMS_WALLET_DIR) for a token that keeps no
data objects. The user PIN is read from --pin-file (a file only its owner
may read or write: mode 0600 or 0400; one trailing newline is ignored) or,
without it, from $NANOKMS_PIN (removed from the process's environment once
read); it is never taken from the command line. A
PIN the token refuses is never tried again.`

// tokenFlags are the flags of every subcommand that opens the token.
type tokenFlags struct {
	module       string
	moduleParams string
	token        string
	walletDir    string
	pinFile      string
}

func (f *tokenFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.module, "module", "", "path of the PKCS#11 library (default $"+envModule+")")
	cmd.Flags().StringVar(&f.moduleParams, "module-params", "", "initialisation parameters the module wants in C_Initialize, e.g. NSS's configdir=... (default $"+envModuleParams+")")
	cmd.Flags().StringVar(&f.token, "token", "", "label of the token, or a pkcs11: URI naming it (default $"+envToken+")")
	cmd.Flags().StringVar(&f.walletDir, "wallet-dir", "", "directory keeping the sealed wallets, for a token that keeps no data objects (default $"+envWalletDir+")")
	cmd.Flags().StringVar(&f.pinFile, "pin-file", "", "file holding the user PIN, mode 0600 (default: the PIN itself in $"+envPIN+")")
}

// tokenConfig is where the token is and where its PIN comes from, resolved
// from the flags and the environment.
type tokenConfig struct {
	module       string
	moduleParams string
	label        string      // how messages name the token: its label, or the URI
	selLabel     string      // the label to select by ("" with a URI)
	uri          *p11uri.URI // nil without one
	walletDir    string      // "" for wallets on the token
	pinFile      string      // "" to read $NANOKMS_PIN
}

// resolve checks the token flags, falling back to the environment. It reads
// nothing: commands call it before reading their input, so that a command
// line that cannot work fails first.
func (f *tokenFlags) resolve() (*tokenConfig, error) {
	c := &tokenConfig{module: f.module, moduleParams: f.moduleParams, walletDir: f.walletDir, pinFile: f.pinFile}
	token := f.token
	if c.module == "" {
		c.module = os.Getenv(envModule)
	}
	if c.moduleParams == "" {
		c.moduleParams = os.Getenv(envModuleParams)
	}
	if c.walletDir == "" {
		c.walletDir = os.Getenv(envWalletDir)
	}
	if token == "" {
		token = os.Getenv(envToken)
	}
	if p11uri.IsURI(token) {
		u, err := p11uri.Parse(token)
		if err != nil {
			var se *p11uri.SyntaxError
			if errors.As(err, &se) {
				return nil, cli.UsageErr("--token: %s", se.Describe())
			}
			return nil, cli.UsageErr("--token: %w", err)
		}
		if !u.HasTokenAttrs() {
			return nil, cli.UsageErr("--token: the URI names no token (give token=, serial= or slot-id=)")
		}
		if _, ok := u.GetQuery(p11uri.PINSource); ok {
			return nil, cli.UsageErr("--token: pin-source is not used: the PIN comes from --pin-file or %s", envPIN)
		}
		if mp, ok := u.GetQuery(p11uri.ModulePath); ok {
			if f.module != "" && f.module != mp {
				return nil, cli.UsageErr("--token: the URI's module-path disagrees with --module")
			}
			if f.module == "" {
				c.module = mp
			}
		}
		c.uri = u
		c.label = u.String()
		if l, ok := u.Get(p11uri.Token); ok && l != "" {
			c.label = l
		}
	} else {
		c.selLabel, c.label = token, token
	}
	switch {
	case c.module == "":
		return nil, cli.UsageErr("no PKCS#11 module: give --module or set %s", envModule)
	case token == "":
		return nil, cli.UsageErr("no token: give --token LABEL or set %s", envToken)
	case len(c.selLabel) > 32:
		return nil, cli.UsageErr("--token: a token label is at most 32 bytes")
	case c.walletDir != "" && !filepath.IsAbs(c.walletDir):
		abs, err := filepath.Abs(c.walletDir)
		if err != nil {
			return nil, cli.UsageErr("--wallet-dir: %v", err)
		}
		c.walletDir = abs
	}
	if c.pinFile == "" {
		if _, ok := os.LookupEnv(envPIN); !ok {
			return nil, cli.UsageErr("no PIN: give --pin-file FILE or set %s (the PIN is never taken from the command line)", envPIN)
		}
	}
	return c, nil
}

// readPIN reads the PIN from the PIN file or $NANOKMS_PIN. Errors never
// name the file: a PIN typed where its path belongs must not be echoed.
func (c *tokenConfig) readPIN() (*hsm.PIN, error) {
	return c.readPINFrom("--pin-file", envPIN)
}

// readPINFrom reads a PIN from c.pinFile (given with flag) or, without
// one, from the environment variable env.
func (c *tokenConfig) readPINFrom(flag, env string) (*hsm.PIN, error) {
	if c.pinFile == "" {
		pin, err := hsm.ReadPIN("", env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", env, pinReason(err))
		}
		return pin, nil
	}
	// The same checks hsm.ReadPIN makes, first, with messages that do
	// not hold the path.
	st, err := os.Stat(c.pinFile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("opening %s: %w", flag, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", flag)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, cli.WithHint(fmt.Errorf("%s is accessible to users other than its owner (mode %04o)", flag, perm),
			"the PIN file must be readable and writable by its owner only: chmod 600 it")
	}
	pin, err := hsm.ReadPIN(c.pinFile, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %s", flag, strings.ReplaceAll(pinReason(err).Error(), c.pinFile, "(the file)"))
	}
	return pin, nil
}

// lookupEnv is os.LookupEnv.
func lookupEnv(k string) (string, bool) { return os.LookupEnv(k) }

// pinReason returns a ConfigError's reason alone, or err.
func pinReason(err error) error {
	var ce *hsm.ConfigError
	if errors.As(err, &ce) {
		return errors.New(ce.Reason)
	}
	return err
}

// open reads the PIN, opens the token and logs in (once). The caller
// closes the token.
func (c *tokenConfig) open(ctx context.Context) (*hsm.Token, error) {
	pin, err := c.readPIN()
	if err != nil {
		return nil, err
	}
	defer pin.Wipe()
	tok, err := hsm.Open(ctx, c.hsmConfig(pin, 1))
	if err != nil {
		return nil, c.explain(err)
	}
	return tok, nil
}

// hsmConfig is the package hsm configuration of the token.
func (c *tokenConfig) hsmConfig(pin *hsm.PIN, pool int) hsm.Config {
	return hsm.Config{Module: c.module, ModuleParams: c.moduleParams, TokenLabel: c.selLabel, URI: c.uri, WalletDir: c.walletDir, PIN: pin, PoolSize: pool}
}

// explain turns an error of package hsm into what an operator needs: a
// plain message and, where there is one, what to do about it. Errors it
// does not know are returned as they are. Commands check the sentinels
// whose meaning depends on what they did before calling it.
func (c *tokenConfig) explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *cli.Error
	if errors.As(err, &ce) {
		return err
	}
	var cfg *hsm.ConfigError
	if errors.As(err, &cfg) && cfg.Field == "label" {
		// The label is not repeated: it could be a secret typed in the
		// wrong place.
		return cli.UsageErr("the wallet label is not valid: %s", cfg.Reason)
	}
	tok := fmt.Sprintf("token %q", c.label)
	switch {
	case errors.Is(err, hsm.ErrNoCgo):
		return cli.WithHint(errors.New("this nanokms was built without cgo and cannot load a PKCS#11 module"), "rebuild it with CGO_ENABLED=1")
	case errors.Is(err, hsm.ErrModule):
		return cli.WithHint(err, "check --module (or "+envModule+"): the path of the token's PKCS#11 library, for SoftHSM usually /usr/lib/softhsm/libsofthsm2.so")
	case errors.Is(err, hsm.ErrModuleInit):
		h := hsm.TokenErrorHint(err)
		if h == "" {
			h = "the module loaded but refused to start: see its own documentation"
		}
		return cli.WithHint(errors.New(trimHSM(err)), h)
	case errors.Is(err, hsm.ErrTokenNotFound) && c.uri != nil:
		return cli.WithHint(fmt.Errorf("no initialised token matches %s", c.uri),
			"list the tokens with 'pkcs11-tool --module "+c.module+" -L' (or 'p11tool --list-tokens'), and check the URI's attributes")
	case errors.Is(err, hsm.ErrTokenNotFound):
		return cli.WithHint(fmt.Errorf("no initialised token is labelled %q", c.label),
			"list the tokens and their labels with 'softhsm2-util --show-slots' (SoftHSM) or 'pkcs11-tool --module "+c.module+" -L', and give the label with --token (or "+envToken+")")
	case errors.Is(err, hsm.ErrTokenAmbiguous):
		return cli.WithHint(fmt.Errorf("more than one token matches %s", tok), "give every token a label of its own, or name it by a pkcs11: URI with its serial")
	case errors.Is(err, hsm.ErrNoSealScheme):
		return cli.WithHint(errors.New(trimHSM(err)), "nanokms needs AES-256-GCM, or AES-256-CBC-PAD with HMAC-SHA-256, on the token: 'nanokms token probe' shows what it offers")
	case errors.Is(err, hsm.ErrSchemeUnsupported):
		return cli.WithHint(errors.New(trimHSM(err)), "'nanokms token probe' shows the seal schemes each token can use; for a backup token of another kind, make the primary's master key with 'token init --for-backup --scheme S' for a scheme S both offer")
	case errors.Is(err, hsm.ErrSchemeMismatch):
		return cli.WithHint(errors.New(trimHSM(err)), "a wallet opens only on a token whose master keys are of its scheme: restore it on such a token")
	case errors.Is(err, hsm.ErrNoWrapMethod):
		return cli.WithHint(errors.New(trimHSM(err)), "'nanokms token probe' on both tokens lists what each can wrap and unwrap")
	case errors.Is(err, hsm.ErrNoCheckValue):
		return cli.WithHint(errors.New(trimHSM(err)), "see docs/HSM.md for tokens that make their own GCM IVs")
	case errors.Is(err, hsm.ErrNoDataObjects):
		return cli.WithHint(fmt.Errorf("%s keeps no data objects, so it cannot hold the wallet (%s)", tok, trimHSM(err)),
			"keep the wallets beside the token: give --wallet-dir DIR (or "+envWalletDir+"; token.wallet_dir for the signer), a directory only this user can write")
	case errors.Is(err, hsm.ErrWalletDir):
		return cli.WithHint(errors.New(trimHSM(err)), "the wallet directory must exist, be a real directory, and be writable by this user only (chmod go-w)")
	case errors.Is(err, hsm.ErrWrongPIN):
		return cli.WithHint(errors.New("the token refused the PIN; it was tried once"),
			"nanokms never retries a PIN, but the token counts failed logins and locks the PIN after a few: check the PIN file (or "+envPIN+") before running another command")
	case errors.Is(err, hsm.ErrPINLocked):
		return cli.WithHint(fmt.Errorf("the user PIN of %s is locked", tok), "only the token's security officer can unlock it, with the vendor's tool")
	case errors.Is(err, hsm.ErrMasterKeyMissing):
		return cli.WithHint(fmt.Errorf("%s has no master key", tok), "create it with 'nanokms token init' (or 'nanokms token init --for-backup' to make backup tokens)")
	case errors.Is(err, hsm.ErrMasterKeyExists):
		return cli.WithHint(fmt.Errorf("%s already has a master key", tok), "nanokms never replaces a master key: use a freshly initialised token")
	case errors.Is(err, hsm.ErrMasterKeyExportable):
		return cli.WithHint(fmt.Errorf("the master key of %s is still extractable: its backup ceremony is not finished", tok),
			"wrap it for every backup token with 'nanokms token wrap-master', then run 'nanokms token finish-backup'")
	case errors.Is(err, hsm.ErrNotExportable):
		return cli.WithHint(fmt.Errorf("the master key of %s is not extractable: it can never be wrapped for a backup token", tok),
			"only a master key made with 'nanokms token init --for-backup', before 'nanokms token finish-backup', can be backed up")
	case errors.Is(err, hsm.ErrTransportKey):
		return cli.WithHint(fmt.Errorf("%s: %s", tok, trimHSM(err)),
			"on the backup token run 'nanokms token transport-key', and wrap the master key for the public key it writes")
	case errors.Is(err, hsm.ErrSealBroken):
		return cli.WithHint(errors.New("the sealed wallet failed its integrity check: it was altered or belongs to another master key"),
			"do not use this copy: restore the wallet from another export or a backup token")
	case errors.Is(err, hsm.ErrWalletExists):
		return cli.WithHint(errors.New(trimHSM(err)), "wallet labels are unique and nanokms never replaces a wallet: choose another label")
	case errors.Is(err, hsm.ErrDuplicateObject):
		return cli.WithHint(fmt.Errorf("%s: %s", tok, trimHSM(err)), "the token was changed by another program: an operator must remove the duplicate")
	case errors.Is(err, hsm.ErrSessionLost):
		return cli.WithHint(err, "the token stopped answering: check that it is still connected")
	case errors.Is(err, hsm.ErrTokenUnavailable):
		return cli.WithHint(err, "the token went away (removed, its store renamed, hidden or emptied, its connection lost): bring it back and run the command again")
	}
	if h := hsm.TokenErrorHint(err); h != "" {
		return cli.WithHint(err, h)
	}
	return err
}

// walletNotFound explains hsm.ErrWalletNotFound for label.
func (c *tokenConfig) walletNotFound(label string) error {
	return cli.WithHint(fmt.Errorf("no wallet labelled %q on token %q", label, c.label), "list the wallets with 'nanokms wallet list'")
}

// explainWallet is explain for an operation on the wallet label.
func (c *tokenConfig) explainWallet(err error, label string) error {
	switch {
	case errors.Is(err, hsm.ErrWalletNotFound):
		return c.walletNotFound(label)
	case errors.Is(err, hsm.ErrWalletExists):
		return cli.WithHint(fmt.Errorf("a wallet labelled %q already exists on token %q", label, c.label),
			"wallet labels are unique and nanokms never replaces a wallet: choose another label")
	case errors.Is(err, hsm.ErrIndexRange):
		return cli.WithHint(fmt.Errorf("wallet %q is a BIP39 wallet: its account indexes are below 2147483648", label),
			"BIP39 accounts are hardened SLIP-0010 keys (m/44'/165'/i'), so the index must be below 2^31")
	}
	return c.explain(err)
}

// trimHSM returns err's text without the "hsm: " prefix.
func trimHSM(err error) string { return strings.TrimPrefix(err.Error(), "hsm: ") }

// checkWalletLabel refuses, without echoing it, a wallet label that looks
// like a secret typed in the wrong place: 64 or 128 hex digits (a seed), or
// eight words or more (a mnemonic, or most of one). hsm checks the rest
// (length, control characters).
func checkWalletLabel(label string) error {
	if label == "" {
		return cli.UsageErr("the wallet label is empty")
	}
	if (len(label) == 64 || len(label) == 128) && isHex(label) {
		return cli.UsageErr("the wallet label looks like a seed (it is not shown): give the seed with --seed-file")
	}
	if len(strings.Fields(label)) >= 8 {
		return cli.UsageErr("the wallet label has many words, like a mnemonic (it is not shown): give the mnemonic with --mnemonic-file")
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// refuseExisting fails if path exists: files nanokms writes are never
// overwritten. writeNewFile checks again, atomically.
func refuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return cli.WithHint(fmt.Errorf("%s already exists", path), "nanokms never overwrites a file: choose another --out")
	}
	return nil
}

// writeNewFile creates path with perm (never overwriting a file) and
// writes data to it, durably.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refuseExisting(path)
		}
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// parseIndexFlag parses an account index flag.
func parseIndexFlag(name, s string) (uint32, error) {
	if s == "" {
		return 0, cli.UsageErr("%s is required", name)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, cli.UsageErr("%s: want a whole number from 0 to 4294967295", name)
	}
	return uint32(v), nil
}
