package relay

import (
	"strings"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/internal/conffile"
)

// Config is the cold relay's configuration file, in TOML, documented key
// by key in docs/CONFIG.md: [relay] (Settings, whose fields are promoted)
// and [bridge]. Its toml tags declare the file's keys; it is read strictly
// (see package conffile): an unknown key is an error at any depth, every
// value has one type, and every problem is reported, all at once, as a
// *conffile.Error naming its key path.
type Config struct {
	Settings `toml:"relay"`
	Bridge   bridge.Config `toml:"bridge"`
}

// Settings is the [relay] section.
type Settings struct {
	// Signer is the signer's address: "unix:///path" or "tcp://host:port"
	// (which needs TLS). Exactly one of Signer and Signers is set.
	Signer string `toml:"signer"`
	// Signers are the addresses of several signers that share one
	// PostgreSQL database (each signer's [signer.postgres]), each written
	// as Signer is: the relay asks a healthy one and fails over to the
	// next when one is unavailable (Signers, the type).
	Signers []string `toml:"signers" conf:"unique"`
	// RetryMin and RetryMax bound the backoff while the signer is down.
	RetryMin time.Duration `toml:"retry_min" conf:"default=200ms"`
	RetryMax time.Duration `toml:"retry_max" conf:"default=10s"`
	// Heartbeat is how often the relay writes a heartbeat frame (0: never).
	Heartbeat time.Duration `toml:"heartbeat" conf:"zero"`
	// Metrics is the textfile-collector file the relay writes its metrics to ("" for none).
	Metrics  string `toml:"metrics" conf:"abspath"`
	LogLevel string `toml:"log_level" conf:"default=info,oneof=debug|info|warn|error"`
	// HealthListen, when set, is where /healthz and /readyz are served
	// over HTTP (package health): "host:port" or "unix:///path"; "" for
	// none. It serves nothing else.
	HealthListen string              `toml:"health_listen"`
	TLS          *conffile.TLSClient `toml:"tls"` // [relay.tls]; nil when absent
}

// LoadConfig reads the relay's configuration file at path and parses it
// with ParseConfig.
//
// An error reading the file is returned wrapped (it names the file;
// errors.Is(err, fs.ErrNotExist) works). A problem with its contents is
// returned as ParseConfig returns it, with File set to path in every
// *conffile.Error.
func LoadConfig(path string) (*Config, error) {
	return conffile.Load[Config](path, "relay", "relay")
}

// ParseConfig parses and validates the contents of a relay configuration
// file.
//
// On success it returns a Config with every default applied. Otherwise it
// returns a nil Config and every problem it found: a single
// *conffile.Error when there is one, else an error made by errors.Join
// whose Unwrap() []error returns only *conffile.Error values, in a stable
// order. It never panics.
func ParseConfig(data []byte) (*Config, error) {
	cfg, errs := conffile.Decode[Config](data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// Endpoints returns the signers' addresses: Signers, or Signer alone.
func (s *Settings) Endpoints() []string {
	if s.Signer != "" {
		return []string{s.Signer}
	}
	return s.Signers
}

// CheckConf checks [relay]: one signer's address or a list of several,
// the retry bounds, the metrics file, the health listener (not a
// signer's socket), and TLS exactly when a signer is reached over TCP.
func (s *Settings) CheckConf(c *conffile.Checker) {
	switch {
	case c.Failed(&s.Signer) || c.Failed(&s.Signers):
	case c.IsSet(&s.Signer) && c.IsSet(&s.Signers):
		c.FailAt(&s.Signers, "not allowed together with %s: give one signer's address, or the list of the signers sharing one database", c.Key(&s.Signer))
	case c.IsSet(&s.Signers) && len(s.Signers) == 0:
		c.FailAt(&s.Signers, "must list at least one signer")
	case !c.IsSet(&s.Signer) && !c.IsSet(&s.Signers):
		c.FailAt(&s.Signer, "required (or %s, the signers sharing one database)", c.Key(&s.Signers))
	}
	c.Endpoint(&s.Signer, conffile.Dial)
	c.CheckEach(&s.Signers, func(v string) string {
		if v == "" {
			return "must not be empty"
		}
		if _, err := conffile.ParseEndpoint(v, conffile.Dial); err != nil {
			return err.Error()
		}
		return ""
	})
	// The health listener is none of the signers' sockets.
	health := c.HTTPListen(&s.HealthListen)
	fields := []*string{&s.Signer}
	for i := range s.Signers {
		fields = append(fields, &s.Signers[i])
	}
	for _, f := range fields {
		if ep, err := conffile.ParseEndpoint(*f, conffile.Dial); err == nil && health.Overlaps(ep) {
			c.FailAt(&s.HealthListen, "must differ from %s (%s)", c.Key(f), *f)
			break
		}
	}
	if s.RetryMax < s.RetryMin && !c.Failed(&s.RetryMin) && !c.Failed(&s.RetryMax) {
		c.FailAt(&s.RetryMax, "%s is less than %s (%s)", s.RetryMax, c.Key(&s.RetryMin), s.RetryMin)
	}
	c.MetricsFile(&s.Metrics)
	// TLS is for the TCP signers: the rule is applied to the first one
	// listed (or to the first signer, when none is).
	endpoint := &s.Signer
	for i := range s.Signers {
		if i == 0 || strings.HasPrefix(s.Signers[i], "tcp://") {
			endpoint = &s.Signers[i]
		}
		if strings.HasPrefix(*endpoint, "tcp://") {
			break
		}
	}
	c.NeedsTLS(&s.TLS, endpoint, "the relay reaches the signer over TCP")
}
