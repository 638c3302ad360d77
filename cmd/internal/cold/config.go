package cold

import (
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// ConfigRoles are the cold roles whose configuration `config check`
// reads: each with the loader its service starts with (and nothing
// else: no token, socket or file is opened).
var ConfigRoles = []cli.ConfigRole{
	{Name: "signer", Load: func(path string) error { _, err := signerconf.Load(path); return err }},
	{Name: "relay", Load: func(path string) error { _, err := relay.LoadConfig(path); return err }},
}

// configCheck is nanokms-cold's config check: the cold roles only. The
// gateway's configuration type is hot code, which this binary never
// links.
var configCheck = &cli.ConfigCheck{
	Roles: ConfigRoles,
	Elsewhere: map[string]string{
		"gateway": "nanokms-cold links no gateway code: check the gateway's configuration with nanokms config check gateway",
	},
}
