package cold

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

type bridgeInspectOptions struct {
	path string
	json bool
}

func newBridgeInspectCmd(e *cli.Env) *cobra.Command {
	var opts bridgeInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE|DIR",
		Short: "Print bridge frames human-readably and flag bad ones",
		Long: `Reads bridge frame files (.nkb, see bridge/frame/FRAMES.md) and prints, for
each: whether it passes the checks a reader applies (OK, or BAD and why), its
type, request id, creation time and age, and a summary of its payload. For a
request: the intent's kind, account, amount in XNO and raw, destination or
source, the head block's hash, the number of approvals and the expiry. For a
response: the signed block's hash, subtype and balance. For a refusal: the
reason and detail.

Given a directory, it reads the directory's .nkb files, then those in its
done/ and quarantine/ subdirectories (with each quarantined file's .reason).
It also flags entries that do not belong on the medium: a link or a file
where done/ or quarantine/ belongs, an entry a reader or writer set aside
(NAME.bad-…), a link named like a temporary file. Like the relay and the
gateway, it follows no symbolic link below the directory it is given. It
changes nothing. Exits 1 if any frame or entry is bad.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.path = args[0]
			return runBridgeInspect(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// inspectedFrame is one file's findings; it is also the --json form.
type inspectedFrame struct {
	File   string `json:"file"`
	Where  string `json:"where"` // "inbox", "done" or "quarantine"
	OK     bool   `json:"ok"`
	Code   string `json:"error_code,omitempty"` // the wire error's name
	Error  string `json:"error,omitempty"`
	Reason string `json:"quarantine_reason,omitempty"`
	When   string `json:"quarantined_at,omitempty"`

	Type       string `json:"type,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	Created    string `json:"created,omitempty"`
	AgeSeconds *int64 `json:"age_seconds,omitempty"`

	Request   *inspectedRequest   `json:"request,omitempty"`
	Response  *inspectedResponse  `json:"response,omitempty"`
	Refusal   *inspectedRefusal   `json:"refusal,omitempty"`
	Heartbeat *inspectedHeartbeat `json:"heartbeat,omitempty"`

	age time.Duration
}

type inspectedRequest struct {
	Kind           string   `json:"kind"`
	Account        string   `json:"account"`
	AmountXNO      string   `json:"amount_xno,omitempty"`
	AmountRaw      string   `json:"amount_raw,omitempty"`
	Destination    string   `json:"destination,omitempty"`
	SourceHash     string   `json:"source_hash,omitempty"`
	Representative string   `json:"representative,omitempty"`
	HeadHash       string   `json:"head_hash,omitempty"`
	Approvals      int      `json:"approvals"`
	ExpiresAt      string   `json:"expires_at"`
	Expired        bool     `json:"expired"`
	Attempt        uint32   `json:"attempt"`
	Template       bool     `json:"template"`
	Problems       []string `json:"problems,omitempty"`
	sinceExpiry    time.Duration
}

type inspectedResponse struct {
	BlockHash  string   `json:"block_hash"`
	Subtype    string   `json:"subtype"`
	Account    string   `json:"account,omitempty"`
	BalanceXNO string   `json:"balance_xno,omitempty"`
	BalanceRaw string   `json:"balance_raw,omitempty"`
	AuditSeq   uint64   `json:"audit_seq"`
	Problems   []string `json:"problems,omitempty"`
}

type inspectedRefusal struct {
	Reason  string `json:"reason"`
	Code    string `json:"code,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Pending string `json:"pending_block_hash,omitempty"`
}

type inspectedHeartbeat struct {
	Sender string `json:"sender"`
	Seq    uint64 `json:"seq"`
	Queued uint32 `json:"queued"`
}

// bridgeInspectResult is the --json output.
type bridgeInspectResult struct {
	Frames []*inspectedFrame `json:"frames"`
	OK     int               `json:"ok"`
	Bad    int               `json:"bad"`
}

func runBridgeInspect(_ context.Context, e *cli.Env, opts bridgeInspectOptions) error {
	now := time.Now()
	st, err := os.Stat(opts.path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("opening %s: %w", opts.path, err)
	}
	var entries []filemedium.InspectedEntry
	if st.IsDir() {
		if entries, err = filemedium.InspectDir(opts.path); err != nil {
			return fmt.Errorf("listing %s: %w", opts.path, err)
		}
	} else {
		where := ""
		switch filepath.Base(filepath.Dir(opts.path)) {
		case filemedium.DoneDir:
			where = filemedium.DoneDir
		case filemedium.QuarantineDir:
			where = filemedium.QuarantineDir
		}
		entries = append(entries, filemedium.InspectFile(opts.path, where))
	}
	res := bridgeInspectResult{Frames: []*inspectedFrame{}}
	for _, en := range entries {
		fr := inspectEntry(en, now)
		res.Frames = append(res.Frames, fr)
		if fr.OK {
			res.OK++
		} else {
			res.Bad++
		}
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, res); err != nil {
			return err
		}
	} else {
		printInspected(e.Stdout, res, opts.path, st.IsDir())
	}
	if res.Bad > 0 {
		return cli.ErrCheckFailed
	}
	return nil
}

// inspectEntry applies a reader's checks (frame, payload, name) to what
// filemedium found at one entry and summarises what it holds. An entry
// that is not a frame file (a link where done/ belongs, an entry set
// aside) is BAD with the medium's reason.
func inspectEntry(en filemedium.InspectedEntry, now time.Time) *inspectedFrame {
	where := en.Where
	if where == "" {
		where = "inbox"
	}
	out := &inspectedFrame{File: en.Path, Where: where}
	if en.Where == filemedium.QuarantineDir {
		out.Reason, out.When = parseReasonFile(en.Reason, en.ReasonErr)
	}
	if en.Err != nil {
		out.setError(en.Err)
		return out
	}
	f := en.Frame
	out.Type = f.Type.String()
	out.RequestID = f.RequestID
	out.Created = f.Created.UTC().Format("2006-01-02T15:04:05.000Z")
	out.age = now.Sub(f.Created).Round(time.Second)
	age := int64(out.age / time.Second)
	out.AgeSeconds = &age
	m, err := frame.DecodePayload(f)
	if err != nil {
		out.setError(err)
		return out
	}
	switch p := m.(type) {
	case *pb.BridgeRequest:
		out.Request = summariseRequest(p, now)
	case *pb.BridgeResponse:
		out.Response = summariseResponse(p)
	case *pb.BridgeRefusal:
		out.Refusal = summariseRefusal(p)
	case *pb.Heartbeat:
		out.Heartbeat = &inspectedHeartbeat{Sender: p.GetSender(), Seq: p.GetSeq(), Queued: p.GetQueued()}
	}
	name := filepath.Base(en.Path)
	if en.Where == filemedium.QuarantineDir {
		name = filemedium.QuarantineBase(name)
	}
	if err := filemedium.CheckFileName(name, f); err != nil {
		out.setError(err)
		return out
	}
	out.OK = true
	return out
}

func (fr *inspectedFrame) setError(err error) {
	fr.Error = err.Error()
	var fe *frame.FrameError
	if errors.As(err, &fe) {
		fr.Code = fe.Code.String()
		fr.Error = fe.Code.String()
		if fe.Detail != "" {
			fr.Error += ": " + fe.Detail
		}
		return
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		fr.Error = pe.Op + ": " + pe.Err.Error()
	}
}

// parseReasonFile returns the reason and time of a quarantined file's
// .reason file (FRAMES.md, "Quarantine"), or "(no .reason file)", or why
// it could not be read.
func parseReasonFile(data []byte, readErr error) (reason, when string) {
	if readErr != nil {
		return "(the .reason file cannot be read: " + readErr.Error() + ")", ""
	}
	if data == nil {
		return "(no .reason file)", ""
	}
	var code, detail, errText string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch k {
		case "reason":
			code = v // the refusal code, or the whole reason of another failure
		case "detail":
			detail = v // what the frame check found, when one failed
		case "error":
			errText = v
		case "quarantined":
			when = v
		}
	}
	switch {
	case code != "" && detail != "":
		return code + ": " + detail, when
	case errText != "": // a frame refused without detail, or a file written before detail lines
		return errText, when
	}
	return code, when
}

func summariseRequest(r *pb.BridgeRequest, now time.Time) *inspectedRequest {
	sr := r.GetSign()
	in := sr.GetIntent()
	out := &inspectedRequest{
		Kind:      strings.ToLower(strings.TrimPrefix(in.GetKind().String(), "INTENT_KIND_")),
		Account:   keyAddress(in.GetAccount()),
		Approvals: len(sr.GetApprovals()),
		Attempt:   r.GetAttempt(),
		Template:  sr.GetTemplate() != nil,
	}
	expires := time.Unix(in.GetExpiresAtUnix(), 0)
	out.ExpiresAt = expires.UTC().Format(time.RFC3339)
	out.Expired = !now.Before(expires)
	out.sinceExpiry = now.Sub(expires).Round(time.Second)
	if raw := in.GetAmountRaw(); raw != "" {
		out.AmountRaw = raw
		if a, err := nano.ParseAmount(raw); err == nil {
			out.AmountXNO = a.XNO()
		} else {
			out.Problems = append(out.Problems, "amount is not a number of raw")
		}
	}
	if d := in.GetDestination(); len(d) > 0 {
		out.Destination = keyAddress(d)
	}
	if s := in.GetSourceHash(); len(s) > 0 {
		out.SourceHash = fmt.Sprintf("%X", s)
	}
	if rep := in.GetRepresentative(); len(rep) > 0 {
		out.Representative = keyAddress(rep)
	}
	if sr.GetHead() != nil {
		if head, err := sr.GetHead().ToNano("head"); err == nil {
			out.HeadHash = head.Hash().String()
		} else {
			out.Problems = append(out.Problems, err.Error())
		}
	}
	return out
}

func summariseResponse(r *pb.BridgeResponse) *inspectedResponse {
	sr := r.GetSign()
	out := &inspectedResponse{Subtype: sr.GetSubtype(), AuditSeq: sr.GetAuditSeq(), BlockHash: fmt.Sprintf("%X", sr.GetHash())}
	blk, err := sr.GetBlock().ToNano("block")
	if err != nil {
		out.Problems = append(out.Problems, err.Error())
		return out
	}
	out.Account = blk.Account.Address()
	out.BalanceRaw = blk.Balance.String()
	out.BalanceXNO = blk.Balance.XNO()
	if h := blk.Hash(); !bytes.Equal(h[:], sr.GetHash()) {
		out.Problems = append(out.Problems, "the block hashes to "+h.String()+", not to the hash given")
	}
	return out
}

func summariseRefusal(r *pb.BridgeRefusal) *inspectedRefusal {
	out := &inspectedRefusal{Reason: signerapi.ReasonName(r.GetReason()), Code: r.GetCode(), Detail: r.GetDetail()}
	if r.GetPending() != nil {
		if b, err := r.GetPending().ToNano("pending"); err == nil {
			out.Pending = b.Hash().String()
		}
	}
	return out
}

// keyAddress returns a 32-byte key as a nano_ address, or the bytes in hex
// with a note when they are not 32.
func keyAddress(k []byte) string {
	if len(k) != len(nano.PublicKey{}) {
		return fmt.Sprintf("%X (%d bytes, not a key)", k, len(k))
	}
	return nano.PublicKey(k).Address()
}

func printInspected(w io.Writer, res bridgeInspectResult, path string, dir bool) {
	for i, fr := range res.Frames {
		if i > 0 {
			fmt.Fprintln(w)
		}
		line := func(label, format string, a ...any) {
			fmt.Fprintf(w, "%-13s %s\n", label+":", fmt.Sprintf(format, a...))
		}
		line("file", "%s", printable(fr.File))
		if fr.OK {
			line("status", "OK")
		} else {
			line("status", "BAD: %s", printable(fr.Error))
		}
		if fr.Where == filemedium.QuarantineDir {
			if fr.When != "" {
				line("quarantined", "%s (at %s)", printable(fr.Reason), printable(fr.When))
			} else {
				line("quarantined", "%s", printable(fr.Reason))
			}
		} else if fr.Where == filemedium.DoneDir {
			line("handled", "yes (in done/)")
		}
		if fr.Type == "" {
			continue
		}
		line("type", "%s", fr.Type)
		line("request id", "%s", fr.RequestID)
		line("created", "%s (%s)", fr.Created, relative(fr.age))
		switch {
		case fr.Request != nil:
			r := fr.Request
			line("kind", "%s", r.Kind)
			line("account", "%s", r.Account)
			if r.AmountRaw != "" {
				if r.AmountXNO != "" {
					line("amount", "%s XNO (%s raw)", r.AmountXNO, r.AmountRaw)
				} else {
					line("amount", "%s (not a number of raw)", printable(r.AmountRaw))
				}
			}
			if r.Destination != "" {
				line("destination", "%s", r.Destination)
			}
			if r.SourceHash != "" {
				line("source", "%s", r.SourceHash)
			}
			if r.Representative != "" {
				line("representative", "%s", r.Representative)
			}
			if r.HeadHash != "" {
				line("head", "%s", r.HeadHash)
			} else {
				line("head", "none (unopened account)")
			}
			line("approvals", "%d", r.Approvals)
			if r.Expired {
				line("expires", "%s (EXPIRED %s)", r.ExpiresAt, relative(r.sinceExpiry))
			} else {
				line("expires", "%s (%s)", r.ExpiresAt, relative(r.sinceExpiry))
			}
			line("attempt", "%d", r.Attempt)
			if r.Template {
				line("template", "yes")
			}
			for _, p := range r.Problems {
				line("problem", "%s", printable(p))
			}
		case fr.Response != nil:
			r := fr.Response
			line("block hash", "%s", r.BlockHash)
			line("subtype", "%s", printable(r.Subtype))
			if r.Account != "" {
				line("account", "%s", r.Account)
				line("balance", "%s XNO (%s raw)", r.BalanceXNO, r.BalanceRaw)
			}
			line("audit seq", "%d", r.AuditSeq)
			for _, p := range r.Problems {
				line("problem", "%s", printable(p))
			}
		case fr.Refusal != nil:
			r := fr.Refusal
			line("reason", "%s", r.Reason)
			if r.Code != "" {
				line("code", "%s", printable(r.Code))
			}
			if r.Detail != "" {
				line("detail", "%s", printable(r.Detail))
			}
			if r.Pending != "" {
				line("pending", "%s", r.Pending)
			}
		case fr.Heartbeat != nil:
			r := fr.Heartbeat
			line("sender", "%s", printable(r.Sender))
			line("seq", "%d", r.Seq)
			line("queued", "%d", r.Queued)
		}
	}
	if len(res.Frames) > 0 {
		fmt.Fprintln(w)
	}
	what := "frames"
	if len(res.Frames) == 1 {
		what = "frame"
	}
	if dir {
		fmt.Fprintf(w, "%d %s in %s: %d OK, %d BAD\n", len(res.Frames), what, printable(path), res.OK, res.Bad)
	} else {
		fmt.Fprintf(w, "%d %s: %d OK, %d BAD\n", len(res.Frames), what, res.OK, res.Bad)
	}
}

// relative says how far d (the time since an event) is from now: "3m2s
// ago" or "in 5s".
func relative(d time.Duration) string {
	switch {
	case d == 0:
		return "now"
	case d < 0:
		return "in " + (-d).String()
	default:
		return d.String() + " ago"
	}
}

// printable returns s unchanged when it is plain printable text, else
// quoted: names and strings from the medium may hold control characters.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}
