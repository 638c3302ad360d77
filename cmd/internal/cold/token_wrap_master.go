package cold

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

type tokenWrapMasterOptions struct {
	token        tokenFlags
	transportKey string
	out          string
	json         bool
}

func newTokenWrapMasterCmd(e *cli.Env) *cobra.Command {
	var opts tokenWrapMasterOptions
	cmd := &cobra.Command{
		Use:   "wrap-master --transport-key FILE --out PKG",
		Short: "Primary: wrap the master key for one backup token",
		Long: `On the primary, during the backup ceremony (after 'nanokms token init
--for-backup', before 'nanokms token finish-backup'): wraps the master key
with RSA-OAEP under the transport public key that 'nanokms token
transport-key' wrote on a backup token (PEM or DER), and writes the package
to --out (mode 0600, never overwritten). Only that backup token can open it.
Prints the transport key's fingerprint, to compare with the one the backup
token printed, and the master key's check value.

The backup token may be of another kind: the transport key file's headers
say which seal schemes it can run and what it can unwrap, and wrap-master
refuses (before wrapping anything) a backup token that cannot use the
primary's scheme. A file without those headers (made by nanokms before
seal schemes) is taken to offer aes-256-gcm and rsa-oaep-sha1, as every
token nanokms supported then did.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenWrapMaster(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.transportKey, "transport-key", "", "the backup token's transport public key (PEM or DER)")
	cmd.Flags().StringVar(&opts.out, "out", "", "file to write the package to (never overwritten)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// wrapMasterResult is the --json output of token wrap-master.
type wrapMasterResult struct {
	Token        string `json:"token"`
	Out          string `json:"out"`
	Scheme       string `json:"scheme"`
	TransportKey string `json:"transport_key"`
	KeyID        string `json:"key_id"`
	Check        string `json:"check"`
}

func runTokenWrapMaster(ctx context.Context, e *cli.Env, opts tokenWrapMasterOptions) error {
	if opts.transportKey == "" {
		return cli.UsageErr("--transport-key is required")
	}
	if opts.out == "" {
		return cli.UsageErr("--out is required")
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	data, err := cli.ReadInput(e, opts.transportKey)
	if err != nil {
		return err
	}
	der := data
	// What nanokms's backup tokens offered before seal schemes.
	target := hsm.BackupTarget{Schemes: []hsm.SealScheme{hsm.SchemeAESGCM}, Unwrap: []string{"rsa-oaep-sha1"}}
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "PUBLIC KEY" {
			return cli.WithHint(fmt.Errorf("--transport-key: a PEM %q block, want \"PUBLIC KEY\"", block.Type), "give the file that 'nanokms token transport-key' wrote on the backup token")
		}
		der = block.Bytes
		if v, ok := block.Headers[pemSchemes]; ok {
			target.Schemes = nil
			for _, name := range splitList(v) {
				s, err := hsm.ParseSealScheme(name)
				if err != nil {
					return cli.WithHint(fmt.Errorf("--transport-key: %s: %s", pemSchemes, pinReason(err)), "give the file that 'nanokms token transport-key' wrote on the backup token")
				}
				target.Schemes = append(target.Schemes, s)
			}
		}
		if v, ok := block.Headers[pemUnwrap]; ok {
			target.Unwrap = splitList(v)
		}
	}
	if err := refuseExisting(opts.out); err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	pkg, err := tok.WrapMasterKey(ctx, der, target)
	if err != nil {
		var ce *hsm.ConfigError
		if errors.As(err, &ce) {
			return cli.WithHint(fmt.Errorf("--transport-key: %s", ce.Reason), "give the file that 'nanokms token transport-key' wrote on the backup token")
		}
		return tc.explain(err)
	}
	// The package's metadata (docs/KEYS.md), for the operators.
	var meta struct {
		KeyID        string `json:"key_id"`
		Scheme       string `json:"scheme"`
		Check        string `json:"check"`
		TransportKey string `json:"transport_key"`
		Keys         []struct {
			KeyID string `json:"key_id"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(pkg, &meta); err != nil {
		return fmt.Errorf("reading the package back: %w", err)
	}
	if meta.KeyID == "" && len(meta.Keys) > 0 {
		meta.KeyID = meta.Keys[0].KeyID
	}
	if meta.Scheme == "" {
		meta.Scheme = hsm.SchemeAESGCM.String()
	}
	if err := writeNewFile(opts.out, append(pkg, '\n'), 0o600); err != nil {
		return err
	}
	res := wrapMasterResult{Token: tc.label, Out: opts.out, Scheme: meta.Scheme, TransportKey: meta.TransportKey, KeyID: meta.KeyID, Check: meta.Check}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "token:         %s\n", res.Token)
	fmt.Fprintf(e.Stdout, "package:       %s\n", res.Out)
	fmt.Fprintf(e.Stdout, "scheme:        %s\n", res.Scheme)
	fmt.Fprintf(e.Stdout, "transport key: %s\n", res.TransportKey)
	fmt.Fprintf(e.Stdout, "check value:   %s\n", res.Check)
	fmt.Fprintln(e.Stdout, "next:          compare the transport key with the fingerprint the backup token printed; there run 'nanokms token import-master PKG'; after the last backup token, 'nanokms token finish-backup' here")
	return nil
}
