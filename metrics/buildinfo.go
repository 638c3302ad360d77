package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanokms/nanokms/internal/buildinfo"
)

// Role label values of nanokms_build_info.
const (
	RoleSigner  = "signer"
	RoleRelay   = "relay"
	RoleGateway = "gateway"
)

// buildInfoHelp is the same for every role: the signer's and the relay's
// textfiles both carry nanokms_build_info, and node_exporter merges a
// family read from several files only when their help texts agree.
const buildInfoHelp = "Always 1: what this nanokms binary is (internal/buildinfo): module version (devel when built from a source tree), VCS revision (unknown without VCS stamping), Go version, PKCS#11 support (yes or no: needs cgo), and the role it runs."

// NewBuildInfo returns nanokms_build_info for role (RoleSigner, RoleRelay
// or RoleGateway): one series of value 1 labelled with the running
// binary's build information (buildinfo.Read) and the role. Its labels
// are fixed when the binary is built; none comes from a request.
func NewBuildInfo(role string) *prometheus.GaugeVec {
	return newBuildInfo(role, buildinfo.Read())
}

func newBuildInfo(role string, info buildinfo.Info) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nanokms_build_info",
		Help: buildInfoHelp,
	}, []string{"version", "revision", "goversion", "pkcs11", "role"})
	g.WithLabelValues(info.Version, info.Revision, info.GoVersion, info.PKCS11Word(), role).Set(1)
	return g
}
