package policy

import (
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// The file's shape. Every leaf is a value, captured as the TOML decoder
// found it and typed by validate, so that a type error names its full key
// path (with array indices) like every other error. The toml tags are the
// only place key names are spelled; conffile.Parse reads them.

type fileConfig struct {
	Signer    signerconf.ServiceSection `toml:"signer"`
	Token     signerconf.TokenSection   `toml:"token"`
	Epoch     epochFile                 `toml:"epoch"`
	Approvers []approverFile            `toml:"approvers"`
	Groups    []groupFile               `toml:"groups"`
}

type epochFile struct {
	Signers conffile.Value `toml:"signers"`
}

type approverFile struct {
	Name      conffile.Value `toml:"name"`
	PublicKey conffile.Value `toml:"public_key"`
}

type groupFile struct {
	Name             conffile.Value `toml:"name"`
	Wallets          conffile.Value `toml:"wallets"`
	Accounts         conffile.Value `toml:"accounts"`
	MaxSend          conffile.Value `toml:"max_send"`
	Velocity24h      conffile.Value `toml:"velocity_24h"`
	Destinations     conffile.Value `toml:"destinations"`
	Representatives  conffile.Value `toml:"representatives"`
	ReceiveAutomatic conffile.Value `toml:"receive_automatic"`
	Tiers            []tierFile     `toml:"tiers"`
}

type tierFile struct {
	UpTo      conffile.Value `toml:"up_to"`
	Quorum    conffile.Value `toml:"quorum"`
	Approvers conffile.Value `toml:"approvers"`
}

// parse is Parse returning the problems as a list.
//
// conffile.Parse checks the document's keys against fileConfig (every key
// known, with exact names; every table a table) and decodes it; validate
// then types every value and checks the rules across sections.
func parse(data []byte) (*Config, []*ConfigError) {
	cfg, errs := conffile.Build(data, (*fileConfig).validate)
	if len(errs) > 0 {
		return nil, asConfigErrors(errs)
	}
	return cfg, nil
}

// asConfigErrors converts conffile's errors to ConfigErrors, sharing them:
// the two types have the same fields.
func asConfigErrors(errs []*conffile.Error) []*ConfigError {
	out := make([]*ConfigError, len(errs))
	for i, e := range errs {
		out[i] = (*ConfigError)(e)
	}
	return out
}
