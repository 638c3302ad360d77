package cold

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm/tlskey"
)

type tokenTLSKeyOptions struct {
	token    tokenFlags
	label    string
	cn       string
	dns      []string
	ips      []string
	out      string
	selfSign bool
	days     int
	existing bool
	json     bool
}

func newTokenTLSKeyCmd(e *cli.Env) *cobra.Command {
	var opts tokenTLSKeyOptions
	cmd := &cobra.Command{
		Use:   "tls-key --label L --out FILE [--cn NAME] [--dns NAME]... [--ip ADDR]... [--self-sign]",
		Short: "Make a TLS key pair on the token (signer or relay mutual TLS) and its certificate request",
		Long: `Generates an ECDSA P-256 key pair on the token, labelled --label, for the
signer's or the relay's mutual TLS: its private key is sensitive, never
extractable and can only sign; its id comes from the token's RNG. A label in
use on the token (a key or a certificate) is refused. Writes a PKCS #10
certificate request (PEM) for the key to --out, naming --cn, --dns and --ip,
and prints the key's attributes as the token reports them.

Have the request signed by your CA, then name the key in the configuration
instead of a key file: signer.tls.key_label = "L" (the key is on the [token]
token), or relay.tls.key_label = "L" with [relay.tls.token] (docs/CONFIG.md).
A server's certificate needs the names clients dial (--dns, --ip); a client's
needs the identity the signer allows (--cn or --dns).

--self-sign writes a self-signed certificate (valid --days, for both server
and client authentication) instead of a request: FOR TESTS AND LABS ONLY,
where each side trusts the other's certificate directly as its CA file.

--existing makes nothing: it writes a new request (or self-signed
certificate) for the key pair already labelled --label, to renew its
certificate.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenTLSKey(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.label, "label", "", "label of the key pair on the token (required)")
	f.StringVar(&opts.out, "out", "", "file to write the certificate request (or certificate) to, PEM (never overwritten; required)")
	f.StringVar(&opts.cn, "cn", "", "subject common name")
	f.StringArrayVar(&opts.dns, "dns", nil, "DNS name (subject alternative name); repeat for more")
	f.StringArrayVar(&opts.ips, "ip", nil, "IP address (subject alternative name); repeat for more")
	f.BoolVar(&opts.selfSign, "self-sign", false, "write a self-signed certificate instead of a request (for tests and labs only)")
	f.IntVar(&opts.days, "days", 30, "validity of a --self-sign certificate, in days")
	f.BoolVar(&opts.existing, "existing", false, "create nothing: write a request for the existing key pair (certificate renewal)")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// tlsKeyResult is the --json output of token tls-key.
type tlsKeyResult struct {
	Token            string `json:"token"`
	Label            string `json:"label"`
	KeyID            string `json:"key_id"`
	Curve            string `json:"curve"`
	PublicKeySHA256  string `json:"public_key_sha256"`
	Sensitive        bool   `json:"sensitive"`
	Extractable      bool   `json:"extractable"`
	NeverExtractable bool   `json:"never_extractable"`
	Local            bool   `json:"local"`
	SignOnly         bool   `json:"sign_only"`
	Created          bool   `json:"created"`
	Out              string `json:"out"`
	Kind             string `json:"kind"` // "csr" or "self-signed"
}

func runTokenTLSKey(ctx context.Context, e *cli.Env, opts tokenTLSKeyOptions) error {
	if opts.label == "" {
		return cli.UsageErr("--label is required")
	}
	if err := tlskey.CheckLabel(opts.label); err != nil {
		return cli.UsageErr("--label: %s", pinReason(err))
	}
	if opts.out == "" {
		return cli.UsageErr("--out is required")
	}
	subj := tlskey.Subject{CommonName: opts.cn, DNSNames: opts.dns}
	for _, s := range opts.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return cli.UsageErr("--ip %q is not an IP address", s)
		}
		subj.IPAddresses = append(subj.IPAddresses, ip)
	}
	if subj.CommonName == "" && len(subj.DNSNames) == 0 && len(subj.IPAddresses) == 0 {
		return cli.UsageErr("give the certificate's names: --cn, --dns or --ip")
	}
	if opts.selfSign && (opts.days < 1 || opts.days > 3650) {
		return cli.UsageErr("--days: want 1 to 3650")
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	if err := refuseExisting(opts.out); err != nil {
		return err
	}
	pin, err := tc.readPIN()
	if err != nil {
		return err
	}
	defer pin.Wipe()
	cfg := tlskey.Config{Module: tc.module, TokenLabel: tc.label, PIN: pin, KeyLabel: opts.label}
	var key *tlskey.Key
	if opts.existing {
		key, err = tlskey.Open(ctx, cfg)
	} else {
		key, err = tlskey.Generate(ctx, cfg)
	}
	pin.Wipe()
	if err != nil {
		return tc.explainTLSKey(err, opts.label)
	}
	defer key.Close()
	// undo removes the key pair this run made, when it cannot finish.
	undo := func(err error) error {
		if !opts.existing {
			if derr := key.Destroy(); derr != nil {
				return fmt.Errorf("%w (and the new key pair could not be removed: %w)", err, derr)
			}
		}
		return err
	}
	info, err := key.Info(ctx)
	if err != nil {
		return undo(tc.explainTLSKey(err, opts.label))
	}
	var data []byte
	kind := "csr"
	if opts.selfSign {
		kind = "self-signed"
		data, err = tlskey.SelfSigned(key, subj, time.Now(), time.Duration(opts.days)*24*time.Hour)
	} else {
		data, err = tlskey.CSR(key, subj)
	}
	if err != nil {
		return undo(err)
	}
	if err := writeNewFile(opts.out, data, 0o644); err != nil {
		return undo(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	sum := sha256.Sum256(spki)
	res := tlsKeyResult{
		Token: tc.label, Label: opts.label, KeyID: hex.EncodeToString(info.ID), Curve: info.Curve,
		PublicKeySHA256: hex.EncodeToString(sum[:]),
		Sensitive:       info.Sensitive, Extractable: info.Extractable, NeverExtractable: info.NeverExtractable, Local: info.Local,
		SignOnly: info.Sign && !info.Decrypt && !info.Unwrap && !info.Derive,
		Created:  !opts.existing, Out: opts.out, Kind: kind,
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "token:        %s\n", res.Token)
	fmt.Fprintf(e.Stdout, "tls key:      %s (%s)\n", res.Label, map[bool]string{true: "created", false: "existing"}[res.Created])
	fmt.Fprintf(e.Stdout, "key id:       %s\n", res.KeyID)
	fmt.Fprintf(e.Stdout, "curve:        %s\n", res.Curve)
	fmt.Fprintf(e.Stdout, "public key:   sha256 %s\n", res.PublicKeySHA256)
	fmt.Fprintf(e.Stdout, "sensitive:    %s\n", yesNo(res.Sensitive))
	fmt.Fprintf(e.Stdout, "extractable:  %s\n", yesNo(res.Extractable))
	fmt.Fprintf(e.Stdout, "sign only:    %s\n", yesNo(res.SignOnly))
	if opts.selfSign {
		fmt.Fprintf(e.Stdout, "certificate:  %s (self-signed, for tests only)\n", res.Out)
		fmt.Fprintf(e.Stdout, "next:         name it as cert and key_label = %q in [signer.tls] or [relay.tls]; the other side trusts this certificate as its CA file\n", res.Label)
	} else {
		fmt.Fprintf(e.Stdout, "request:      %s\n", res.Out)
		fmt.Fprintf(e.Stdout, "next:         have your CA sign the request; then set cert and key_label = %q in [signer.tls] or [relay.tls]\n", res.Label)
	}
	return nil
}

// explainTLSKey is explain for token tls-key.
func (c *tokenConfig) explainTLSKey(err error, label string) error {
	switch {
	case errors.Is(err, tlskey.ErrLabelExists):
		return cli.WithHint(fmt.Errorf("the label %q is already in use on token %q", label, c.label),
			"nanokms never replaces a key: choose another --label, or give --existing to write a new request for that key pair")
	case errors.Is(err, tlskey.ErrKeyNotFound):
		return cli.WithHint(fmt.Errorf("no TLS key pair labelled %q on token %q", label, c.label), "without --existing, tls-key creates it")
	case errors.Is(err, tlskey.ErrNotProtected):
		return cli.WithHint(fmt.Errorf("token %q did not protect the new key as asked; it was removed: %w", c.label, err), "this token cannot hold nanokms's TLS keys: use key files or another token")
	case errors.Is(err, tlskey.ErrDuplicateKey), errors.Is(err, tlskey.ErrModuleInUse), errors.Is(err, tlskey.ErrKeyType):
		return cli.WithHint(err, "the token was changed by another program, or holds a key nanokms did not make: inspect it with 'pkcs11-tool -O'")
	}
	return c.explain(err)
}
