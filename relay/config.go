package relay

import (
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
	// (which needs TLS).
	Signer string `toml:"signer" conf:"required"`
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

// CheckConf checks [relay]: the signer's address, the retry bounds, the
// metrics file, the health listener (not the signer's socket), and TLS
// exactly when the signer is reached over TCP.
func (s *Settings) CheckConf(c *conffile.Checker) {
	signer := c.Endpoint(&s.Signer, conffile.Dial)
	if health := c.HTTPListen(&s.HealthListen); health.Overlaps(signer) {
		c.FailAt(&s.HealthListen, "must differ from %s (%s)", c.Key(&s.Signer), s.Signer)
	}
	if s.RetryMax < s.RetryMin && !c.Failed(&s.RetryMin) && !c.Failed(&s.RetryMax) {
		c.FailAt(&s.RetryMax, "%s is less than %s (%s)", s.RetryMax, c.Key(&s.RetryMin), s.RetryMin)
	}
	c.MetricsFile(&s.Metrics)
	c.NeedsTLS(&s.TLS, &s.Signer, "the relay reaches the signer over TCP")
}
