package cold

import (
	"context"
	"errors"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// signerStore is the signer's state where its configuration keeps it:
// the bbolt file signer.state, or the signers' PostgreSQL database of
// [signer.postgres]. Exactly one of its fields is set.
type signerStore struct {
	bolt *signer.Store
	pg   *signer.PGStore
}

// openSignerStore opens the store the [signer] section names. The
// connection string of [signer.postgres] is read from its file (owner
// only, as --pg-dsn-file's) or its environment variable; its errors name
// the key (a *cli.DSNSourceError).
func openSignerStore(ctx context.Context, s *signerconf.Service) (signerStore, error) {
	p := s.Postgres
	if p == nil {
		st, err := signer.OpenStore(s.State)
		if err != nil {
			return signerStore{}, err
		}
		if err := st.CheckLive(); err != nil {
			st.Close()
			return signerStore{}, retiredHint(err)
		}
		return signerStore{bolt: st}, nil
	}
	var (
		dsn, source string
		err         error
	)
	if p.DSNEnv != "" {
		source = "signer.postgres.dsn_env"
		dsn, err = cli.ReadDSNEnv(source, p.DSNEnv)
	} else {
		source = "signer.postgres.dsn_file"
		dsn, err = cli.ReadDSNFile(source, p.DSNFile, "the signers' database")
	}
	if err != nil {
		return signerStore{}, err
	}
	st, err := openPGStore(ctx, dsn, signer.PGOptions{OpTimeout: p.OpTimeout, MaxConns: int32(p.MaxConns)}, source,
		"upgrade this signer to the release of the signers that use the database")
	if err != nil {
		return signerStore{}, err
	}
	if err := st.CheckLive(ctx); err != nil {
		st.Close()
		return signerStore{}, retiredHint(err)
	}
	return signerStore{pg: st}, nil
}

// retiredHint adds the way out to a store found retired at start.
func retiredHint(err error) error {
	if errors.Is(err, signer.ErrStoreRetired) {
		return cli.WithHint(err, "its state was moved by a retiring export: point signer.state (or [signer.postgres]) at the store it was imported into")
	}
	return err
}

// newSigner returns a Signer deciding through the store.
func (st signerStore) newSigner(keys signer.KeyStore, pol signer.Policy, opts signer.Options) *signer.Signer {
	if st.pg != nil {
		return signer.NewWithState(st.pg, keys, pol, opts)
	}
	return signer.New(st.bolt, keys, pol, opts)
}

// describe names the store in logs (never the connection string).
func (st signerStore) describe(s *signerconf.Service) string {
	if st.pg != nil {
		return "postgres"
	}
	return s.State
}

// Close closes the store.
func (st signerStore) Close() error {
	if st.pg != nil {
		return st.pg.Close()
	}
	return st.bolt.Close()
}
