package conffile

import "time"

// Defaults and bounds of a [*.postgres] section (the conf tags of
// Postgres say the same; the tests check that they agree).
const (
	// DefaultPGOpTimeout is op_timeout when absent.
	DefaultPGOpTimeout = 10 * time.Second
	// DefaultPGMaxConns is max_conns when absent.
	DefaultPGMaxConns = 8
	// MaxPGMaxConns is the largest max_conns accepted.
	MaxPGMaxConns = 256
)

// Postgres is a [*.postgres] section: the PostgreSQL database a role
// keeps its state in, shared by every instance of the role configured
// with it (the signers' [signer.postgres], the gateways'
// [gateway.postgres]). The connection string may hold a password, so the
// file names where it is read: exactly one of DSNFile and DSNEnv is
// non-empty.
type Postgres struct {
	// DSNFile is a file holding the connection string (libpq's
	// keyword=value form or a postgres:// URL), which only its owner may
	// read or write; checked when the role starts.
	DSNFile string `toml:"dsn_file" conf:"abspath"`
	// DSNEnv names an environment variable holding the connection string.
	DSNEnv string `toml:"dsn_env"`
	// OpTimeout bounds each operation on the database (a read, or a
	// transaction with its retries): past it the operation fails as the
	// database being unavailable, and nothing is reported done.
	OpTimeout time.Duration `toml:"op_timeout" conf:"default=10s"`
	// MaxConns bounds the role's connections to the database, 1 to
	// MaxPGMaxConns.
	MaxConns int `toml:"max_conns" conf:"default=8"`
}

// CheckConf checks a [*.postgres] section: exactly one source of the
// connection string, and the pool's bound.
func (p *Postgres) CheckConf(c *Checker) {
	c.SecretSource(&p.DSNFile, &p.DSNEnv, "connection string")
	c.IntRange(&p.MaxConns, 1, MaxPGMaxConns)
}

// StateStore checks that a role's state is in exactly one place: the
// bbolt file state or the PostgreSQL database pg ([*.postgres]); shared
// names the database in the messages ("the signers' PostgreSQL
// database").
func (c *Checker) StateStore(state *string, pg **Postgres, shared string) {
	switch {
	case c.Failed(state) || c.Failed(pg):
	case c.IsSet(state) && *pg != nil:
		c.FailAt(pg, "not allowed together with %s: the state is either a bbolt file or %s", c.Key(state), shared)
	case *pg != nil:
	case !c.IsSet(state):
		c.FailAt(state, "required (or [%s], %s)", c.Key(pg), shared)
	case *state == "":
		c.FailAt(state, "must not be empty")
	}
}
