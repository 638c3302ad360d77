package cold

import (
	"crypto/ed25519"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// approveRelease prints an approval of the release statement in data,
// having said on stderr what it withdraws.
func approveRelease(e *cli.Env, key ed25519.PrivateKey, data []byte) error {
	var st pb.ReleaseStatement
	if err := protojson.Unmarshal(data, &st); err != nil {
		return cli.WithHint(fmt.Errorf("release statement: %w", err), "the statement is the output of 'nanokms signer release prepare'")
	}
	r, err := intent.ParseRelease(&st)
	if err != nil {
		return err
	}
	a, err := intent.ApproveRelease(key, &st)
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(a)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stderr, "approving the release statement: %s\n", describeRelease(&r))
	fmt.Fprintln(e.Stdout, string(out))
	return nil
}
