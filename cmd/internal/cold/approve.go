package cold

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

type approveOptions struct {
	keyFile    string
	intentFile string
	release    bool
}

func newApproveCmd(e *cli.Env) *cobra.Command {
	var opts approveOptions
	cmd := &cobra.Command{
		Use:   "approve --key-file K [--release] [INTENT]",
		Short: "Sign an intent (or a release statement) as an approver (RFC 8032 Ed25519 over its canonical bytes)",
		Long: `Reads an intent (its JSON form, as 'nanokms client intent' writes it: nano_
addresses, the amount in raw and XNO; the protobuf JSON form of
nanokms.v1.Intent is read too) from INTENT or standard input, and prints an
approval: the approver's public key and an Ed25519
signature over the intent's canonical bytes (docs/PROTOCOL.md), as the JSON
form of nanokms.v1.Approval. The key file holds the approver's Ed25519
private key as a PKCS#8 PEM block or as 64 hex digits (the RFC 8032 seed);
make one with 'nanokms approver keygen'.

With --release the input is a release statement (the output of 'nanokms
signer release prepare') instead, and what it withdraws is said in words on
standard error before it is approved.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.intentFile = args[0]
			}
			return runApprove(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.keyFile, "key-file", "", "the approver's Ed25519 private key (PEM or 64 hex digits)")
	cmd.Flags().BoolVar(&opts.release, "release", false, "approve a release statement (nanokms signer release) rather than an intent")
	return cmd
}

func runApprove(_ context.Context, e *cli.Env, opts approveOptions) error {
	if opts.keyFile == "" {
		return cli.UsageErr("--key-file is required")
	}
	if opts.keyFile == "-" && (opts.intentFile == "" || opts.intentFile == "-") {
		return cli.UsageErr("the key and the intent cannot both come from standard input")
	}
	key, err := readApproverKey(e, opts.keyFile)
	if err != nil {
		return err
	}
	defer clear(key)
	data, err := cli.ReadInput(e, opts.intentFile)
	if err != nil {
		return err
	}
	if opts.release {
		return approveRelease(e, key, data)
	}
	in, err := readIntentJSON(data)
	if err != nil {
		return err
	}
	a, err := intent.Approve(key, in)
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(a)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, string(out))
	return nil
}

// intentHint is the hint of an intent that does not read.
const intentHint = `the intent is the output of 'nanokms client intent' (docs/PROTOCOL.md, "Intent JSON")`

// readIntentJSON reads an intent's JSON form (intent.UnmarshalJSON); an
// error names the field, with a hint. It does not validate the intent.
func readIntentJSON(data []byte) (*pb.Intent, error) {
	in, err := intent.UnmarshalJSON(data)
	if err != nil {
		return nil, cli.WithHint(err, intentHint)
	}
	return in, nil
}

// readApproverKey reads an Ed25519 private key from a PKCS#8 PEM file or a
// file of 64 hex digits. Errors never echo the file's contents.
func readApproverKey(e *cli.Env, file string) (ed25519.PrivateKey, error) {
	data, err := cli.ReadSecretInput(e, "--key-file", file)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	if block, _ := pem.Decode(data); block != nil {
		defer clear(block.Bytes)
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("--key-file: the PEM block is not a PKCS#8 private key")
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, errors.New("--key-file: the key is not an Ed25519 key")
		}
		return ek, nil
	}
	text := strings.TrimSpace(string(data))
	if len(text) != 2*ed25519.SeedSize {
		return nil, cli.WithHint(errors.New("--key-file: want a PKCS#8 PEM block or 64 hex digits"), "make a key with 'nanokms approver keygen --out FILE'")
	}
	seed, err := hex.DecodeString(text)
	if err != nil {
		return nil, errors.New("--key-file: not hex")
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}
