package hot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/gateway/leader"
	"github.com/nanokms/nanokms/internal/pgmigrate"
)

// openGateway opens the gateway on the store its [gateway] section names:
// the bbolt file gateway.state, or the PostgreSQL database of
// [gateway.postgres], whose connection string is read from its file
// (owner only) or its environment variable; those errors name the key (a
// *cli.DSNSourceError) and never quote the connection string. With
// [gateway.leader] the gateway is one of several on the database, elected
// (on the same connection string) to drive the bridge.
func openGateway(ctx context.Context, s *gateway.Settings, opts gateway.Options, log *slog.Logger) (*gateway.Gateway, error) {
	p := s.Postgres
	if p == nil {
		return gateway.Open(s.State, opts)
	}
	var (
		dsn, source string
		err         error
	)
	if p.DSNEnv != "" {
		source = "gateway.postgres.dsn_env"
		dsn, err = cli.ReadDSNEnv(source, p.DSNEnv)
	} else {
		source = "gateway.postgres.dsn_file"
		dsn, err = cli.ReadDSNFile(source, p.DSNFile, "the gateway's database")
	}
	if err != nil {
		return nil, err
	}
	if l := s.Leader; l != nil {
		if opts.Elector, err = leader.New(leader.Config{DSN: dsn, Medium: l.Medium, Holder: l.Holder,
			CheckInterval: l.CheckInterval, CheckTimeout: l.CheckTimeout, Log: log}); err != nil {
			return nil, fmt.Errorf("gateway.leader: %w", err)
		}
	}
	gw, err := gateway.OpenPG(ctx, dsn, gateway.PGOptions{OpTimeout: p.OpTimeout, MaxConns: int32(p.MaxConns)}, opts)
	switch {
	case errors.Is(err, pgmigrate.ErrNewer):
		return nil, cli.WithHint(err, "upgrade this gateway to the release of the gateways that use the database")
	case errors.Is(err, gateway.ErrStoreUnavailable):
		return nil, cli.WithHint(err, "is the database running, and does "+source+" name it?")
	}
	return gw, err
}

// storeName names the gateway's store in logs (never the connection
// string).
func storeName(s *gateway.Settings) string {
	if s.Postgres != nil {
		return "postgres"
	}
	return s.State
}
