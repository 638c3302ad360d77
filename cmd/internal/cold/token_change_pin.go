package cold

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
)

// envNewPIN holds the new PIN of token change-pin when no file is given.
const envNewPIN = "NANOKMS_NEW_PIN"

type tokenChangePINOptions struct {
	token      tokenFlags
	newPINFile string
	json       bool
}

func newTokenChangePINCmd(e *cli.Env) *cobra.Command {
	var opts tokenChangePINOptions
	cmd := &cobra.Command{
		Use:   "change-pin --new-pin-file F",
		Short: "Change the token's user PIN",
		Long: `Logs in with the current user PIN and changes it (C_SetPIN) to the PIN in
--new-pin-file (or, without it, in $NANOKMS_NEW_PIN). Like the current PIN,
the new one is never taken from the command line and never printed. The
token's PIN length rules apply ('nanokms token probe' prints them). Update
the signer's PIN file afterwards: the old PIN no longer works, and the
signer never retries a PIN the token refused.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenChangePIN(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.newPINFile, "new-pin-file", "", "file holding the new user PIN, mode 0600 (default: the PIN itself in $"+envNewPIN+")")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

type changePINResult struct {
	Token   string `json:"token"`
	Changed bool   `json:"changed"`
}

func runTokenChangePIN(ctx context.Context, e *cli.Env, opts tokenChangePINOptions) error {
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	newSrc := &tokenConfig{pinFile: opts.newPINFile}
	if opts.newPINFile == "" {
		if _, ok := lookupEnv(envNewPIN); !ok {
			return cli.UsageErr("no new PIN: give --new-pin-file FILE or set %s (a PIN is never taken from the command line)", envNewPIN)
		}
	}
	newPIN, err := newSrc.readPINFrom("--new-pin-file", envNewPIN)
	if err != nil {
		return err
	}
	defer newPIN.Wipe()
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	if err := tok.ChangePIN(ctx, newPIN); err != nil {
		if errors.Is(err, hsm.ErrWrongPIN) {
			return cli.WithHint(errors.New("the token refused the current PIN when changing it"), "check the PIN file (or "+envPIN+")")
		}
		return tc.explain(err)
	}
	res := changePINResult{Token: tc.label, Changed: true}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "token:       %s\n", res.Token)
	fmt.Fprintln(e.Stdout, "PIN:         changed")
	fmt.Fprintln(e.Stdout, "next:        give the signer (token.pin_file) the new PIN")
	return nil
}
