package cold

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

type tokenTransportKeyOptions struct {
	token tokenFlags
	out   string
	json  bool
}

func newTokenTransportKeyCmd(e *cli.Env) *cobra.Command {
	var opts tokenTransportKeyOptions
	cmd := &cobra.Command{
		Use:   "transport-key --out FILE",
		Short: "Backup token: make the key that will receive the master key",
		Long: `The first step of the backup ceremony, on a backup token (one with no master
key): generates the RSA-3072 transport key pair on the token (its private
half never leaves it and can only unwrap), writes the public half to --out
as a PEM "PUBLIC KEY" block (not secret), and prints its SHA-256
fingerprint. Write the fingerprint down: 'nanokms token wrap-master' prints
it again on the primary. Run again, it writes the same public key.

The block's headers say what this token offers the ceremony, so that the
primary can refuse a backup token that could not use its master key:
Nanokms-Seal-Schemes (the seal schemes it can run) and Nanokms-Unwrap
(the wrapping methods it can unwrap). The fingerprint covers the key only.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenTransportKey(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.out, "out", "", "file to write the transport public key to (never overwritten)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// transportKeyResult is the --json output of token transport-key.
type transportKeyResult struct {
	Token       string   `json:"token"`
	Out         string   `json:"out"`
	Fingerprint string   `json:"fingerprint"`
	Schemes     []string `json:"schemes"`
	Unwrap      []string `json:"unwrap"`
}

// The PEM headers of a transport key file.
const (
	pemSchemes = "Nanokms-Seal-Schemes"
	pemUnwrap  = "Nanokms-Unwrap"
)

func joinSchemes(ss []hsm.SealScheme) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

// splitList splits a header's comma-separated list.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runTokenTransportKey(ctx context.Context, e *cli.Env, opts tokenTransportKeyOptions) error {
	if opts.out == "" {
		return cli.UsageErr("--out is required")
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	if err := refuseExisting(opts.out); err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	der, err := tok.CreateTransportKey(ctx)
	if errors.Is(err, hsm.ErrMasterKeyExists) {
		return cli.WithHint(fmt.Errorf("token %q already has a master key: it cannot be a backup token", tc.label),
			"a backup token receives its master key in the ceremony: use a freshly initialised token")
	}
	if err != nil {
		return tc.explain(err)
	}
	target := tok.BackupTarget()
	block := &pem.Block{Type: "PUBLIC KEY", Bytes: der, Headers: map[string]string{
		pemSchemes: joinSchemes(target.Schemes),
		pemUnwrap:  strings.Join(target.Unwrap, ", "),
	}}
	if err := writeNewFile(opts.out, pem.EncodeToMemory(block), 0o644); err != nil {
		return err
	}
	res := transportKeyResult{Token: tc.label, Out: opts.out, Fingerprint: hsm.TransportKeyFingerprint(der),
		Schemes: splitList(block.Headers[pemSchemes]), Unwrap: append([]string{}, target.Unwrap...)}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "token:         %s\n", res.Token)
	fmt.Fprintf(e.Stdout, "transport key: %s\n", res.Out)
	fmt.Fprintf(e.Stdout, "fingerprint:   %s\n", res.Fingerprint)
	fmt.Fprintf(e.Stdout, "offers:        %s; unwraps %s\n", orNone(res.Schemes), orNone(res.Unwrap))
	fmt.Fprintln(e.Stdout, "next:          on the primary, 'nanokms token wrap-master --transport-key FILE --out PKG'; compare the fingerprint it prints with this one")
	return nil
}
