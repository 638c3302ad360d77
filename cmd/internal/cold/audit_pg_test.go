package cold

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/internal/pgtest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerconf"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }

// pgPolicy is a minimal signer policy over the custody wallet.
const pgPolicy = `
[signer]
state = "%s/unused.db"
listen = "unix://%s/unused.sock"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "unused"
pin_env = "NANOKMS_PIN"

[[approvers]]
name = "ops"
public_key = "8A88E3DD7409F195FD52DB2D3CBA5D72CA6709BF1D94121BF3748801B40F6F5C"

[[groups]]
name = "custody"
wallets = ["custody"]
[[groups.tiers]]
quorum = 1
approvers = ["ops"]
`

// pgSigner returns a signer deciding through a PGStore on dsn, signing
// with a fresh SoftHSM token holding the custody wallet.
func pgSigner(t *testing.T, dsn string) *signer.Signer {
	t.Helper()
	dir := t.TempDir()
	cfg, err := signerconf.Parse(fmt.Appendf(nil, pgPolicy, dir, dir))
	if err != nil {
		t.Fatal(err)
	}
	st, err := signer.OpenPGStore(t.Context(), dsn, signer.PGOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return signer.NewWithState(st, custodytest.MustToken(t, "cold", custodytest.TokenOptions{}), &cfg.Policy, signer.Options{})
}

// writeDSN writes dsn to a file of mode perm and returns its path.
func writeDSN(t *testing.T, dsn string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(path, []byte(dsn+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func pgExecT(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestAuditVerifyPostgres: audit verify reads the signers' chain on
// PostgreSQL, named by a connection string from a file or an environment
// variable: the records of the signers' adoptions verify (text and
// --json); a record altered in the database is found by number; an empty
// database is refused and left empty; a file others may read, a variable
// not set and a command line naming two sources are refused; and no error
// quotes the connection string (a password in it stays out of the output).
func TestAuditVerifyPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s := pgSigner(t, dsn)
	for i := range uint32(3) {
		if _, err := s.Adopt(t.Context(), custodytest.Wallet, i, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	file := writeDSN(t, dsn, 0o600)

	res := runCLI(t, "", "audit", "verify", "--pg-dsn-file", file)
	if res.code != 0 || res.stdout != "audit chain: 3 records, every link verifies\n" || res.stderr != "" {
		t.Fatalf("audit verify --pg-dsn-file:\n%s", res)
	}
	t.Setenv("TEST_SIGNERS_DSN", dsn)
	res = runCLI(t, "", "audit", "verify", "--pg-dsn-env", "TEST_SIGNERS_DSN", "--json")
	var out auditVerifyResult
	if err := json.Unmarshal([]byte(res.stdout), &out); res.code != 0 || err != nil || out != (auditVerifyResult{Records: 3, Valid: true}) {
		t.Fatalf("audit verify --pg-dsn-env --json (%v):\n%s", err, res)
	}

	// Record 2 altered in the database.
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var data []byte
	if err := conn.QueryRow(t.Context(), "SELECT record FROM signer_audit WHERE seq = 2").Scan(&data); err != nil {
		t.Fatal(err)
	}
	rec := new(pb.AuditRecord)
	if err := proto.Unmarshal(data, rec); err != nil {
		t.Fatal(err)
	}
	rec.Detail = strings.ToUpper(rec.GetDetail())
	if data, err = proto.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	pgExecT(t, dsn, "UPDATE signer_audit SET record = $1 WHERE seq = 2", data)
	res = runCLI(t, "", "audit", "verify", "--pg-dsn-file", file)
	if want := "audit chain: BROKEN at record 2: the record's contents do not match its hash (1 records before it verify)\n"; res.code != 1 || res.stdout != want || res.stderr != "" {
		t.Fatalf("audit verify of an altered chain:\n%s\nwant exit 1 and %q", res, want)
	}

	// A database no signer used: refused, and nothing created in it.
	empty := srv.NewDatabase(t)
	res = runCLI(t, "", "audit", "verify", "--pg-dsn-file", writeDSN(t, empty, 0o400))
	if res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, "the database holds no signer state") ||
		!strings.Contains(res.stderr, "hint: name the database the signers use") {
		t.Fatalf("audit verify of an empty database:\n%s", res)
	}
	var tables int
	econn, err := pgx.Connect(t.Context(), empty)
	if err != nil {
		t.Fatal(err)
	}
	defer econn.Close(context.Background())
	if err := econn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("audit verify created %d tables in the empty database (%v)", tables, err)
	}

	// A password in the connection string, and no server where it points.
	const secret = "s3cret-passw0rd"
	nowhere := fmt.Sprintf("host=%s port=5432 user=postgres password=%s dbname=x sslmode=disable connect_timeout=5", t.TempDir(), secret)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"readable by others", []string{"--pg-dsn-file", writeDSN(t, dsn, 0o644)}, 1, "accessible to users other than its owner (mode 0644): chmod 600 it"},
		{"missing file", []string{"--pg-dsn-file", filepath.Join(t.TempDir(), "none")}, 1, "no such file or directory"},
		{"unset variable", []string{"--pg-dsn-env", "TEST_NO_SUCH_DSN_VARIABLE"}, 1, "environment variable TEST_NO_SUCH_DSN_VARIABLE is not set or empty"},
		{"two sources", []string{"--pg-dsn-file", file, "--pg-dsn-env", "TEST_SIGNERS_DSN"}, 2, "--pg-dsn-file and --pg-dsn-env are mutually exclusive"},
		{"with --state", []string{"--pg-dsn-file", file, "--state", "x.db"}, 2, "--pg-dsn-file/--pg-dsn-env and --state/--connect/--config are mutually exclusive"},
		{"with --connect", []string{"--pg-dsn-env", "TEST_SIGNERS_DSN", "--connect", "unix:///x"}, 2, "--pg-dsn-file/--pg-dsn-env and --state/--connect/--config are mutually exclusive"},
		{"no server", []string{"--pg-dsn-file", writeDSN(t, nowhere, 0o600)}, 1, "is PostgreSQL running"},
		{"bad string", []string{"--pg-dsn-file", writeDSN(t, "host='unterminated password="+secret, 0o600)}, 1, "the PostgreSQL connection string does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, "", append([]string{"audit", "verify"}, tc.args...)...)
			if res.code != tc.code || res.stdout != "" || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("%s\nwant exit %d and %q on stderr", res, tc.code, tc.want)
			}
			if strings.Contains(res.stderr, secret) || strings.Contains(res.stderr, "dbname=") {
				t.Fatalf("the error quotes the connection string:\n%s", res)
			}
		})
	}
}
