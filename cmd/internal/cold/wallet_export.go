package cold

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/spf13/cobra"
)

type walletExportOptions struct {
	token tokenFlags
	label string
	out   string
	json  bool
}

func newWalletExportCmd(e *cli.Env) *cobra.Command {
	var opts walletExportOptions
	cmd := &cobra.Command{
		Use:   "export LABEL --out FILE",
		Short: "Write a wallet's sealed copy (ciphertext only) for a backup token",
		Long: `Writes the wallet LABEL to --out as it is stored on the token: its sealed
blob (AES-256-GCM ciphertext under the master key) with its label, id, kind
and the master key's check value (docs/KEYS.md). The file is created with
mode 0600 and never overwrites one. Nothing in it is readable without a token
holding the same master key; 'nanokms wallet restore' stores it on such a
token (a backup token made in the same ceremony).` + tokenFlagsHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.label = args[0]
			return runWalletExport(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.out, "out", "", "file to write the export to (mode 0600, never overwritten)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// walletExportResult is the --json output of wallet export.
type walletExportResult struct {
	Token          string `json:"token"`
	Label          string `json:"label"`
	WalletID       string `json:"wallet_id"`
	Kind           string `json:"kind"`
	MasterKeyCheck string `json:"master_key_check"`
	Out            string `json:"out"`
}

func runWalletExport(ctx context.Context, e *cli.Env, opts walletExportOptions) error {
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
	doc, err := tok.ExportWallet(ctx, opts.label)
	if err != nil {
		return tc.explainWallet(err, opts.label)
	}
	// The export's metadata (docs/KEYS.md), for the operators.
	var meta struct {
		WalletID       string `json:"wallet_id"`
		Kind           string `json:"kind"`
		MasterKeyCheck string `json:"master_key_check"`
	}
	if err := json.Unmarshal(doc, &meta); err != nil {
		return fmt.Errorf("reading the export back: %w", err)
	}
	if err := writeNewFile(opts.out, append(doc, '\n'), 0o600); err != nil {
		return err
	}
	res := walletExportResult{Token: tc.label, Label: opts.label, WalletID: meta.WalletID, Kind: meta.Kind, MasterKeyCheck: meta.MasterKeyCheck, Out: opts.out}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "token:       %s\n", res.Token)
	fmt.Fprintf(e.Stdout, "wallet:      %s\n", res.Label)
	fmt.Fprintf(e.Stdout, "wallet id:   %s\n", res.WalletID)
	fmt.Fprintf(e.Stdout, "kind:        %s\n", res.Kind)
	if res.MasterKeyCheck == "" {
		// A token that makes its own GCM IVs cannot compute one.
		fmt.Fprintln(e.Stdout, "check value: none (the token cannot compute one)")
		fmt.Fprintf(e.Stdout, "export:      %s (sealed: it restores only on a token holding the same master key)\n", res.Out)
	} else {
		fmt.Fprintf(e.Stdout, "check value: %s\n", res.MasterKeyCheck)
		fmt.Fprintf(e.Stdout, "export:      %s (sealed: it restores only on a token whose master key has this check value)\n", res.Out)
	}
	return nil
}
