package hot

import (
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/gateway"
)

// ConfigRoles are the hot roles whose configuration `config check` reads,
// with the loader the gateway starts with.
var ConfigRoles = []cli.ConfigRole{
	{Name: "gateway", Load: func(path string) error { _, err := gateway.LoadConfig(path); return err }},
}
