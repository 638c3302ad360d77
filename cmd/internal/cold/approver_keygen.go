package cold

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/spf13/cobra"
)

type approverKeygenOptions struct {
	out  string
	json bool
}

func newApproverCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("approver", "Manage approver keys")
	cmd.AddCommand(newApproverKeygenCmd(e))
	return cmd
}

func newApproverKeygenCmd(e *cli.Env) *cobra.Command {
	var opts approverKeygenOptions
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make an approver's Ed25519 key; print its public key for the signer's config",
		Long: `Writes a new Ed25519 private key as a PKCS#8 PEM file (mode 0600, never
overwriting an existing file) and prints the public key as 64 hex digits, the
form the signer's [[approvers]] public_key takes.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runApproverKeygen(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.out, "out", "", "file to write the private key to")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runApproverKeygen(_ context.Context, e *cli.Env, opts approverKeygenOptions) error {
	if opts.out == "" {
		return cli.UsageErr("--out is required")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	defer clear(priv)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	defer clear(der)
	pemData := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	defer clear(pemData)
	if err := writeNewFile(opts.out, pemData, 0o600); err != nil {
		return err
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, map[string]string{"public_key": fmt.Sprintf("%X", []byte(pub)), "key_file": opts.out})
	}
	fmt.Fprintf(e.Stdout, "%X\n", []byte(pub))
	return nil
}
