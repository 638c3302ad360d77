package cold

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
)

type tokenProbeOptions struct {
	token tokenFlags
	json  bool
}

func newTokenProbeCmd(e *cli.Env) *cobra.Command {
	var opts tokenProbeOptions
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Show what the token offers: mechanisms, seal scheme, enforced attributes",
		Long: `Opens the token and prints what nanokms found it offers: the module and the
token, the mechanisms nanokms can use (with their key sizes and uses), the
seal schemes it can run and the one 'nanokms token init' would choose, and
which protective attributes (sensitive, extractable, copyable, destroyable,
modifiable, private) it enforces. Nothing is assumed: every scheme and
attribute is tried on throw-away session objects, which are gone when the
command ends, and one throw-away token data object tells whether wallets
can be stored on the token. An attribute the token does not know is left
out of nanokms's templates for this token, and listed as not enforced.
It changes nothing else on the token.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenProbe(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// Shapes of the --json output of token probe (and of the capability part
// of token init's).
type (
	probeResult struct {
		Module        probeModule      `json:"module"`
		Token         probeToken       `json:"token"`
		Offered       int              `json:"mechanisms_offered"`
		Mechanisms    []probeMechanism `json:"mechanisms"`
		Schemes       []probeScheme    `json:"schemes"`
		Scheme        string           `json:"scheme"`
		MasterKey     string           `json:"master_key_scheme"`
		Attributes    []probeAttribute `json:"attributes"`
		NotEnforced   []string         `json:"not_enforced"`
		WalletStorage probeStorage     `json:"wallet_storage"`
		SessionCopy   probeCopy        `json:"session_copy"`
		Wrap          []string         `json:"wrap"`
		Unwrap        []string         `json:"unwrap"`
	}
	// probeCopy says whether the Token unseals with a session-object
	// copy of the master keys (hsm.SessionCopy).
	probeCopy struct {
		Used   bool   `json:"used"`
		Reason string `json:"reason,omitempty"`
	}
	probeModule struct {
		Path            string `json:"path"`
		Manufacturer    string `json:"manufacturer"`
		Description     string `json:"description"`
		LibraryVersion  string `json:"library_version"`
		CryptokiVersion string `json:"cryptoki_version"`
		Params          bool   `json:"params"`
	}
	probeToken struct {
		Label        string `json:"label"`
		Manufacturer string `json:"manufacturer"`
		Model        string `json:"model"`
		Serial       string `json:"serial"`
		Slot         uint   `json:"slot"`
		MinPINLen    uint   `json:"min_pin_len"`
		MaxPINLen    uint   `json:"max_pin_len"`
	}
	probeMechanism struct {
		Name       string   `json:"name"`
		MinKeySize uint     `json:"min_key_size"`
		MaxKeySize uint     `json:"max_key_size"`
		Flags      []string `json:"flags"`
		Use        string   `json:"use"`
	}
	probeScheme struct {
		Name        string `json:"name"`
		Usable      bool   `json:"usable"`
		Reason      string `json:"reason,omitempty"`
		IV          string `json:"iv,omitempty"`
		MultiPart   bool   `json:"multi_part,omitempty"`
		FailureCode string `json:"failure_code,omitempty"`
	}
	probeAttribute struct {
		Name     string `json:"name"`
		Known    bool   `json:"known"`
		Enforced bool   `json:"enforced"`
		Detail   string `json:"detail"`
	}
	probeStorage struct {
		Where        string `json:"where"` // "token" or "directory"
		WalletDir    string `json:"wallet_dir,omitempty"`
		TokenObjects bool   `json:"token_objects"`
		Private      bool   `json:"private"`
		Detail       string `json:"detail"`
	}
)

func newProbeResult(c hsm.Capabilities, walletDir, masterScheme string) probeResult {
	r := probeResult{
		Module: probeModule{Path: c.Module.Path, Manufacturer: c.Module.Manufacturer, Description: c.Module.Description,
			LibraryVersion: c.Module.LibraryVersion, CryptokiVersion: c.Module.CryptokiVersion, Params: c.Module.Params},
		Token: probeToken{Label: c.Token.Label, Manufacturer: c.Token.Manufacturer, Model: c.Token.Model, Serial: c.Token.Serial,
			Slot: c.Token.Slot, MinPINLen: c.Token.MinPINLen, MaxPINLen: c.Token.MaxPINLen},
		Offered:     c.Offered,
		Mechanisms:  []probeMechanism{},
		MasterKey:   masterScheme,
		NotEnforced: []string{},
		Wrap:        append([]string{}, c.Wrap...),
		Unwrap:      append([]string{}, c.Unwrap...),
	}
	if s := c.Scheme(); s != 0 {
		r.Scheme = s.String()
	}
	for _, m := range c.Mechanisms {
		r.Mechanisms = append(r.Mechanisms, probeMechanism{Name: m.Name, MinKeySize: m.MinKeySize, MaxKeySize: m.MaxKeySize, Flags: m.FlagNames(), Use: m.Use})
	}
	for _, s := range c.Schemes {
		ps := probeScheme{Name: s.Scheme.String(), Usable: s.Usable, Reason: s.Reason, MultiPart: s.MultiPart}
		if s.Usable {
			if s.Scheme == hsm.SchemeAESGCM {
				ps.IV = s.IV.String()
			}
			ps.FailureCode = hsm.CodeName(s.FailureCode)
		}
		r.Schemes = append(r.Schemes, ps)
	}
	for _, a := range c.Attributes {
		r.Attributes = append(r.Attributes, probeAttribute{Name: string(a.Attribute), Known: a.Known, Enforced: a.Enforced, Detail: a.Detail})
		if !a.Enforced {
			r.NotEnforced = append(r.NotEnforced, string(a.Attribute))
		}
	}
	ws := c.WalletStorage
	r.WalletStorage = probeStorage{Where: "token", TokenObjects: ws.TokenObjects, Private: ws.Private, Detail: ws.Detail}
	if walletDir != "" {
		r.WalletStorage.Where, r.WalletStorage.WalletDir = "directory", walletDir
	}
	return r
}

// storageLine says where wallets go and what that means.
func (r probeResult) storageLine() string {
	ws := r.WalletStorage
	switch {
	case ws.Where == "directory":
		return "files in the wallet directory " + ws.WalletDir
	case ws.TokenObjects && ws.Private:
		return "private data objects on the token"
	case ws.TokenObjects:
		return "public data objects on the token (it refuses private ones; the seeds in them stay sealed)"
	}
	return "the token keeps no data objects: give --wallet-dir (token.wallet_dir) to keep wallets beside it"
}

// notEnforcedLine lists the attributes not enforced, each with why.
func (r probeResult) notEnforcedLine() string {
	if len(r.NotEnforced) == 0 {
		return "none"
	}
	var parts []string
	for _, a := range r.Attributes {
		if !a.Enforced {
			why := "not held"
			if !a.Known {
				why = "unknown to the token"
			}
			parts = append(parts, a.Name+" ("+why+")")
		}
	}
	return strings.Join(parts, ", ")
}

func runTokenProbe(ctx context.Context, e *cli.Env, opts tokenProbeOptions) error {
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	if _, err := tok.ProbeWalletStorage(ctx); err != nil {
		return tc.explain(err)
	}
	master := ""
	scheme, err := tok.MasterKeyScheme(ctx)
	switch {
	case err == nil:
		master = scheme.String()
	case errors.Is(err, hsm.ErrMasterKeyMissing):
	default:
		return tc.explain(err)
	}
	r := newProbeResult(tok.Capabilities(), tok.WalletDir(), master)
	sc := tok.SessionCopy()
	r.SessionCopy = probeCopy{Used: sc.Used, Reason: sc.Reason}
	if opts.json {
		return cli.PrintJSON(e.Stdout, r)
	}
	w := e.Stdout
	params := ""
	if r.Module.Params {
		params = ", with initialisation parameters"
	}
	fmt.Fprintf(w, "module:       %s (%s %s, %s; PKCS#11 %s%s)\n", r.Module.Path, r.Module.Manufacturer, r.Module.LibraryVersion, r.Module.Description, r.Module.CryptokiVersion, params)
	fmt.Fprintf(w, "token:        %s (%s, %s, serial %s, slot %d)\n", r.Token.Label, r.Token.Manufacturer, r.Token.Model, r.Token.Serial, r.Token.Slot)
	fmt.Fprintf(w, "PIN length:   %d to %d\n", r.Token.MinPINLen, r.Token.MaxPINLen)
	fmt.Fprintf(w, "mechanisms:   %d offered; of those nanokms uses:\n", r.Offered)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range r.Mechanisms {
		fmt.Fprintf(tw, "  %s\t%d-%d\t%s\t%s\n", m.Name, m.MinKeySize, m.MaxKeySize, strings.Join(m.Flags, ","), m.Use)
	}
	tw.Flush()
	fmt.Fprintln(w, "seal schemes:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range r.Schemes {
		if !s.Usable {
			fmt.Fprintf(tw, "  %s\tnot usable\t%s\n", s.Name, s.Reason)
			continue
		}
		how := "a failed MAC is " + s.FailureCode
		if s.IV != "" {
			parts := "single-part"
			if s.MultiPart {
				parts = "multi-part"
			}
			how = fmt.Sprintf("IV from the %s, %s; a failed tag is %s", s.IV, parts, s.FailureCode)
		}
		fmt.Fprintf(tw, "  %s\tusable\t%s\n", s.Name, how)
	}
	tw.Flush()
	switch {
	case r.Scheme == "":
		fmt.Fprintln(w, "scheme:       none: nanokms cannot seal wallets on this token")
	default:
		fmt.Fprintf(w, "scheme:       %s (what 'nanokms token init' chooses)\n", r.Scheme)
	}
	if r.MasterKey != "" {
		fmt.Fprintf(w, "master key:   present, %s\n", r.MasterKey)
	} else {
		fmt.Fprintln(w, "master key:   none yet")
	}
	fmt.Fprintln(w, "attributes:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, a := range r.Attributes {
		state := "enforced"
		if !a.Enforced {
			state = "NOT ENFORCED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.Name, state, a.Detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "not enforced: %s\n", r.notEnforcedLine())
	fmt.Fprintf(w, "wallets:      %s\n", r.storageLine())
	if r.SessionCopy.Used {
		fmt.Fprintln(w, "session copy: used: wallets are unsealed with a session-object copy of the master key, held while nanokms runs")
	} else {
		fmt.Fprintf(w, "session copy: %s\n", r.SessionCopy.Reason)
	}
	fmt.Fprintf(w, "backup:       wraps with %s; unwraps %s\n", orNone(r.Wrap), orNone(r.Unwrap))
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}
