package cold

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type walletImportOptions struct {
	token          tokenFlags
	label          string
	seedFile       string
	mnemonicFile   string
	passphraseFile string
	json           bool
}

func newWalletImportCmd(e *cli.Env) *cobra.Command {
	var opts walletImportOptions
	cmd := &cobra.Command{
		Use:   "import LABEL (--seed-file F | --mnemonic-file F [--passphrase-file F])",
		Short: "Store an existing seed or BIP39 mnemonic on the token as a wallet",
		Long: `Stores an existing secret on the token under LABEL, sealed under the master
key:

  --seed-file F      a Nano seed, 64 hex digits (a trailing newline is fine);
                     account i is BLAKE2b-256(seed ‖ i), as in the Nano node
                     and most wallets.
  --mnemonic-file F  a BIP39 English mnemonic of 12 to 24 words, with
                     --passphrase-file F for its optional passphrase (one
                     trailing newline is removed); account i is the SLIP-0010
                     key m/44'/165'/i', as in Nault and the Ledger Nano app.

F may be - for standard input (for one of them). Secrets are read only from
files, never from the command line, wiped from memory after use, and never
printed, even in errors. Prints the wallet's id and its account 0: compare it
with the address you expect.` + tokenFlagsHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.label = args[0]
			return runWalletImport(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.seedFile, "seed-file", "", "file holding the seed as 64 hex digits, or - for standard input")
	cmd.Flags().StringVar(&opts.mnemonicFile, "mnemonic-file", "", "file holding a BIP39 English mnemonic, or - for standard input")
	cmd.Flags().StringVar(&opts.passphraseFile, "passphrase-file", "", "file holding the mnemonic's passphrase, or - for standard input")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runWalletImport(ctx context.Context, e *cli.Env, opts walletImportOptions) error {
	if err := checkWalletLabel(opts.label); err != nil {
		return err
	}
	switch {
	case opts.seedFile == "" && opts.mnemonicFile == "":
		return cli.UsageErr("give one of --seed-file or --mnemonic-file")
	case opts.seedFile != "" && opts.mnemonicFile != "":
		return cli.UsageErr("--seed-file and --mnemonic-file are mutually exclusive")
	case opts.passphraseFile != "" && opts.mnemonicFile == "":
		return cli.UsageErr("--passphrase-file goes with --mnemonic-file only (a Nano seed has no passphrase)")
	case opts.mnemonicFile == "-" && opts.passphraseFile == "-":
		return cli.UsageErr("the mnemonic and the passphrase cannot both come from standard input")
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	if opts.seedFile != "" {
		return importSeed(ctx, e, tc, opts)
	}
	return importMnemonic(ctx, e, tc, opts)
}

func importSeed(ctx context.Context, e *cli.Env, tc *tokenConfig, opts walletImportOptions) error {
	data, err := cli.ReadSecretInput(e, "--seed-file", opts.seedFile)
	if err != nil {
		return err
	}
	seed, err := nano.ParseSeedBytes(data)
	clear(data)
	if err != nil {
		return cli.WithHint(fmt.Errorf("--seed-file: %w", err), "the file must hold exactly 64 hex digits (a trailing newline is fine)")
	}
	defer seed.Wipe()
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	info, err := tok.ImportWallet(ctx, opts.label, &seed)
	seed.Wipe()
	if err != nil {
		return tc.explainWallet(err, opts.label)
	}
	return reportWallet(ctx, e, tc, tok, info, opts.json)
}

func importMnemonic(ctx context.Context, e *cli.Env, tc *tokenConfig, opts walletImportOptions) error {
	mnemonic, err := cli.ReadSecretInput(e, "--mnemonic-file", opts.mnemonicFile)
	if err != nil {
		return err
	}
	defer clear(mnemonic)
	var passphrase []byte
	if opts.passphraseFile != "" {
		data, err := cli.ReadSecretInput(e, "--passphrase-file", opts.passphraseFile)
		if err != nil {
			return err
		}
		defer clear(data)
		passphrase = bytes.TrimSuffix(data, []byte("\n"))
		passphrase = bytes.TrimSuffix(passphrase, []byte("\r"))
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	info, err := tok.ImportMnemonic(ctx, opts.label, mnemonic, passphrase)
	clear(mnemonic)
	clear(passphrase)
	if errors.Is(err, hsm.ErrBadMnemonic) {
		return cli.WithHint(fmt.Errorf("--mnemonic-file: %s", trimHSM(err)),
			"nothing was stored: the file must hold 12, 15, 18, 21 or 24 words of the BIP39 English list with a valid checksum")
	}
	if err != nil {
		return tc.explainWallet(err, opts.label)
	}
	return reportWallet(ctx, e, tc, tok, info, opts.json)
}
