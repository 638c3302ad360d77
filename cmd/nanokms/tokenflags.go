package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

// The environment variables the token flags fall back to. The PIN itself
// may come from the environment (never from argv); hsm.ReadPIN removes it
// from the process environment once read (Go's, and the environment block
// /proc/PID/environ shows).
const (
	envModule = "NANOKMS_PKCS11_MODULE"
	envToken  = "NANOKMS_TOKEN"
	envPIN    = "NANOKMS_PIN"
)

// tokenFlagsHelp is appended to the Long help of every command that opens
// the token.
const tokenFlagsHelp = `

The token is the PKCS#11 token labelled --token (or $NANOKMS_TOKEN) in the
module --module (or $NANOKMS_PKCS11_MODULE). The user PIN is read from
--pin-file (a file only its owner may read or write: mode 0600 or 0400;
one trailing newline is ignored) or, without it, from $NANOKMS_PIN
(removed from the process's environment once read); it is never
taken from the command line. A PIN the token refuses is never tried again.`

// tokenFlags are the flags of every subcommand that opens the token.
type tokenFlags struct {
	module  string
	token   string
	pinFile string
}

func (f *tokenFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.module, "module", "", "path of the PKCS#11 library (default $"+envModule+")")
	cmd.Flags().StringVar(&f.token, "token", "", "label of the token (default $"+envToken+")")
	cmd.Flags().StringVar(&f.pinFile, "pin-file", "", "file holding the user PIN, mode 0600 (default: the PIN itself in $"+envPIN+")")
}

// tokenConfig is where the token is and where its PIN comes from, resolved
// from the flags and the environment.
type tokenConfig struct {
	module  string
	label   string
	pinFile string // "" to read $NANOKMS_PIN
}

// resolve checks the token flags, falling back to the environment. It reads
// nothing: commands call it before reading their input, so that a command
// line that cannot work fails first.
func (f *tokenFlags) resolve() (*tokenConfig, error) {
	c := &tokenConfig{module: f.module, label: f.token, pinFile: f.pinFile}
	if c.module == "" {
		c.module = os.Getenv(envModule)
	}
	if c.label == "" {
		c.label = os.Getenv(envToken)
	}
	switch {
	case c.module == "":
		return nil, usageErr("no PKCS#11 module: give --module or set %s", envModule)
	case c.label == "":
		return nil, usageErr("no token: give --token LABEL or set %s", envToken)
	case len(c.label) > 32:
		return nil, usageErr("--token: a token label is at most 32 bytes")
	}
	if c.pinFile == "" {
		if _, ok := os.LookupEnv(envPIN); !ok {
			return nil, usageErr("no PIN: give --pin-file FILE or set %s (the PIN is never taken from the command line)", envPIN)
		}
	}
	return c, nil
}

// readPIN reads the PIN from the PIN file or $NANOKMS_PIN. Errors never
// name the file: a PIN typed where its path belongs must not be echoed.
func (c *tokenConfig) readPIN() (*hsm.PIN, error) {
	if c.pinFile == "" {
		pin, err := hsm.ReadPIN("", envPIN)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envPIN, pinReason(err))
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
		return nil, fmt.Errorf("opening --pin-file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("--pin-file: not a regular file")
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, withHint(fmt.Errorf("--pin-file is accessible to users other than its owner (mode %04o)", perm),
			"the PIN file must be readable and writable by its owner only: chmod 600 it")
	}
	pin, err := hsm.ReadPIN(c.pinFile, "")
	if err != nil {
		return nil, fmt.Errorf("--pin-file: %s", strings.ReplaceAll(pinReason(err).Error(), c.pinFile, "(the file)"))
	}
	return pin, nil
}

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
	tok, err := hsm.Open(ctx, hsm.Config{Module: c.module, TokenLabel: c.label, PIN: pin, PoolSize: 1})
	if err != nil {
		return nil, c.explain(err)
	}
	return tok, nil
}

// explain turns an error of package hsm into what an operator needs: a
// plain message and, where there is one, what to do about it. Errors it
// does not know are returned as they are. Commands check the sentinels
// whose meaning depends on what they did before calling it.
func (c *tokenConfig) explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	var cfg *hsm.ConfigError
	if errors.As(err, &cfg) && cfg.Field == "label" {
		// The label is not repeated: it could be a secret typed in the
		// wrong place.
		return usageErr("the wallet label is not valid: %s", cfg.Reason)
	}
	tok := fmt.Sprintf("token %q", c.label)
	switch {
	case errors.Is(err, hsm.ErrNoCgo):
		return withHint(errors.New("this nanokms was built without cgo and cannot load a PKCS#11 module"), "rebuild it with CGO_ENABLED=1")
	case errors.Is(err, hsm.ErrModule):
		return withHint(err, "check --module (or "+envModule+"): the path of the token's PKCS#11 library, for SoftHSM usually /usr/lib/softhsm/libsofthsm2.so")
	case errors.Is(err, hsm.ErrTokenNotFound):
		return withHint(fmt.Errorf("no initialised token is labelled %q", c.label),
			"list the tokens and their labels with 'softhsm2-util --show-slots' (SoftHSM) or 'pkcs11-tool --module "+c.module+" -L', and give the label with --token (or "+envToken+")")
	case errors.Is(err, hsm.ErrTokenAmbiguous):
		return withHint(fmt.Errorf("more than one token is labelled %q", c.label), "give every token a label of its own: nanokms finds its token by label")
	case errors.Is(err, hsm.ErrWrongPIN):
		return withHint(errors.New("the token refused the PIN; it was tried once"),
			"nanokms never retries a PIN, but the token counts failed logins and locks the PIN after a few: check the PIN file (or "+envPIN+") before running another command")
	case errors.Is(err, hsm.ErrPINLocked):
		return withHint(fmt.Errorf("the user PIN of %s is locked", tok), "only the token's security officer can unlock it, with the vendor's tool")
	case errors.Is(err, hsm.ErrMasterKeyMissing):
		return withHint(fmt.Errorf("%s has no master key", tok), "create it with 'nanokms token init' (or 'nanokms token init --for-backup' to make backup tokens)")
	case errors.Is(err, hsm.ErrMasterKeyExists):
		return withHint(fmt.Errorf("%s already has a master key", tok), "nanokms never replaces a master key: use a freshly initialised token")
	case errors.Is(err, hsm.ErrMasterKeyExportable):
		return withHint(fmt.Errorf("the master key of %s is still extractable: its backup ceremony is not finished", tok),
			"wrap it for every backup token with 'nanokms token wrap-master', then run 'nanokms token finish-backup'")
	case errors.Is(err, hsm.ErrNotExportable):
		return withHint(fmt.Errorf("the master key of %s is not extractable: it can never be wrapped for a backup token", tok),
			"only a master key made with 'nanokms token init --for-backup', before 'nanokms token finish-backup', can be backed up")
	case errors.Is(err, hsm.ErrTransportKey):
		return withHint(fmt.Errorf("%s: %s", tok, trimHSM(err)),
			"on the backup token run 'nanokms token transport-key', and wrap the master key for the public key it writes")
	case errors.Is(err, hsm.ErrSealBroken):
		return withHint(errors.New("the sealed wallet failed its integrity check: it was altered or belongs to another master key"),
			"do not use this copy: restore the wallet from another export or a backup token")
	case errors.Is(err, hsm.ErrWalletExists):
		return withHint(errors.New(trimHSM(err)), "wallet labels are unique and nanokms never replaces a wallet: choose another label")
	case errors.Is(err, hsm.ErrDuplicateObject):
		return withHint(fmt.Errorf("%s: %s", tok, trimHSM(err)), "the token was changed by another program: an operator must remove the duplicate")
	case errors.Is(err, hsm.ErrSessionLost):
		return withHint(err, "the token stopped answering: check that it is still connected")
	}
	return err
}

// walletNotFound explains hsm.ErrWalletNotFound for label.
func (c *tokenConfig) walletNotFound(label string) error {
	return withHint(fmt.Errorf("no wallet labelled %q on token %q", label, c.label), "list the wallets with 'nanokms wallet list'")
}

// explainWallet is explain for an operation on the wallet label.
func (c *tokenConfig) explainWallet(err error, label string) error {
	switch {
	case errors.Is(err, hsm.ErrWalletNotFound):
		return c.walletNotFound(label)
	case errors.Is(err, hsm.ErrWalletExists):
		return withHint(fmt.Errorf("a wallet labelled %q already exists on token %q", label, c.label),
			"wallet labels are unique and nanokms never replaces a wallet: choose another label")
	case errors.Is(err, hsm.ErrIndexRange):
		return withHint(fmt.Errorf("wallet %q is a BIP39 wallet: its account indexes are below 2147483648", label),
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
		return usageErr("the wallet label is empty")
	}
	if (len(label) == 64 || len(label) == 128) && isHex(label) {
		return usageErr("the wallet label looks like a seed (it is not shown): give the seed with --seed-file")
	}
	if len(strings.Fields(label)) >= 8 {
		return usageErr("the wallet label has many words, like a mnemonic (it is not shown): give the mnemonic with --mnemonic-file")
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
		return withHint(fmt.Errorf("%s already exists", path), "nanokms never overwrites a file: choose another --out")
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
		return 0, usageErr("%s is required", name)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usageErr("%s: want a whole number from 0 to 4294967295", name)
	}
	return uint32(v), nil
}
