package cold

import (
	"encoding/hex"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

// newTokenCmd groups the token set-up subcommands: the master key and its
// backup ceremony.
func newTokenCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("token", "Create the token's master key and copy it to backup tokens")
	cmd.Long = `The key ceremony (docs/KEYS.md). A token holds one master key, an AES-256 key
generated on the token that seals every wallet. To have backup tokens, the
master key is made extractable ('token init --for-backup') and copied to each
backup token wrapped under a key that only that token holds:

  backup:  nanokms token transport-key --out backup-1.pub
  primary: nanokms token init --for-backup
  primary: nanokms token wrap-master --transport-key backup-1.pub --out backup-1.pkg
  backup:  nanokms token import-master backup-1.pkg
  primary: nanokms token finish-backup

After 'token finish-backup' the master key can never leave the primary again:
make every backup token before it. Operators compare the transport key
fingerprints and the master key check values that the steps print.

'token tls-key' makes the signer's or the relay's TLS key pair on the token.`
	cmd.AddCommand(
		newTokenProbeCmd(e),
		newTokenInitCmd(e),
		newTokenChangePINCmd(e),
		newTokenTransportKeyCmd(e),
		newTokenWrapMasterCmd(e),
		newTokenImportMasterCmd(e),
		newTokenFinishBackupCmd(e),
		newTokenTLSKeyCmd(e),
	)
	return cmd
}

// masterKeyResult is the --json output of the token subcommands that
// report the master key.
type masterKeyResult struct {
	Token            string `json:"token"`
	Scheme           string `json:"scheme"`
	Label            string `json:"label"`
	MACLabel         string `json:"mac_label,omitempty"`
	KeyID            string `json:"key_id"`
	Check            string `json:"check"`
	NoCheckReason    string `json:"no_check_reason,omitempty"`
	Sensitive        bool   `json:"sensitive"`
	Extractable      bool   `json:"extractable"`
	NeverExtractable bool   `json:"never_extractable"`
	Local            bool   `json:"local"`
}

func newMasterKeyResult(token string, info hsm.MasterKeyInfo) masterKeyResult {
	return masterKeyResult{
		Token:            token,
		Scheme:           info.Scheme.String(),
		Label:            info.Label,
		MACLabel:         info.MACLabel,
		KeyID:            hex.EncodeToString(info.ID),
		Check:            info.Check,
		NoCheckReason:    info.NoCheckReason,
		Sensitive:        info.Sensitive,
		Extractable:      info.Extractable,
		NeverExtractable: info.NeverExtractable,
		Local:            info.Local,
	}
}

// printMasterKey prints the master key's description as text.
func printMasterKey(e *cli.Env, r masterKeyResult) {
	fmt.Fprintf(e.Stdout, "token:       %s\n", r.Token)
	fmt.Fprintf(e.Stdout, "scheme:      %s\n", r.Scheme)
	fmt.Fprintf(e.Stdout, "master key:  %s\n", r.Label)
	if r.MACLabel != "" {
		fmt.Fprintf(e.Stdout, "MAC key:     %s\n", r.MACLabel)
	}
	fmt.Fprintf(e.Stdout, "key id:      %s\n", r.KeyID)
	if r.Check == "" {
		fmt.Fprintf(e.Stdout, "check value: none: %s\n", r.NoCheckReason)
	} else {
		fmt.Fprintf(e.Stdout, "check value: %s\n", r.Check)
	}
	fmt.Fprintf(e.Stdout, "sensitive:   %s\n", yesNo(r.Sensitive))
	fmt.Fprintf(e.Stdout, "extractable: %s\n", yesNo(r.Extractable))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
