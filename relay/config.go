package relay

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/internal/conffile"
)

// RelayConfig is the cold relay's configuration file.
type Config struct {
	// Signer is the signer's address: "unix:///path" or "tcp://host:port"
	// (which needs TLS).
	Signer string
	TLS    *conffile.TLSClient
	// RetryMin and RetryMax bound the backoff while the signer is down.
	RetryMin, RetryMax time.Duration
	// Heartbeat is how often the relay writes a heartbeat frame (0: never).
	Heartbeat time.Duration
	// Metrics is the textfile-collector file the relay writes its metrics to ("" for none).
	Metrics  string
	LogLevel string
	Bridge   bridge.Config
}

type configFile struct {
	Relay  relaySection   `toml:"relay"`
	Bridge bridge.Section `toml:"bridge"`
}

type relaySection struct {
	Signer    conffile.Value             `toml:"signer"`
	RetryMin  conffile.Value             `toml:"retry_min"`
	RetryMax  conffile.Value             `toml:"retry_max"`
	Heartbeat conffile.Value             `toml:"heartbeat"`
	Metrics   conffile.Value             `toml:"metrics"`
	LogLevel  conffile.Value             `toml:"log_level"`
	TLS       *conffile.TLSClientSection `toml:"tls"` // nil when [relay.tls] is absent
}

// LoadRelayConfig reads the relay's configuration file at path and parses
// it with ParseRelayConfig.
//
// An error reading the file is returned wrapped (it names the file;
// errors.Is(err, fs.ErrNotExist) works). A problem with its contents is
// returned as ParseRelayConfig returns it, with File set to path in every
// *conffile.Error.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("relay: reading the relay configuration: %w", err)
	}
	cfg, errs := parseConfig(data)
	if len(errs) > 0 {
		conffile.SetFile(errs, path)
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// ParseRelayConfig parses and validates the contents of a relay
// configuration file.
//
// On success it returns a RelayConfig with every default applied. Otherwise
// it returns a nil RelayConfig and every problem it found: a single
// *conffile.Error when there is one, else an error made by errors.Join
// whose Unwrap() []error returns only *conffile.Error values, in a stable
// order. It never panics.
func ParseConfig(data []byte) (*Config, error) {
	cfg, errs := parseConfig(data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

func parseConfig(data []byte) (*Config, []*conffile.Error) {
	return conffile.Build(data, (*configFile).validate)
}

// Defaults of the relay's file.
const (
	confDefaultRetryMin = 200 * time.Millisecond
	confDefaultRetryMax = 10 * time.Second
)

// validate checks the relay's file and builds its RelayConfig; problems
// are recorded in c.
func (f *configFile) validate(c *conffile.Checker) *Config {
	const key = "relay"
	r := &f.Relay
	cfg := &Config{}
	signer := c.Endpoint(key+".signer", r.Signer, conffile.Dial)
	if signer.Network != "" {
		cfg.Signer = signer.String()
	}
	cfg.RetryMin = c.Duration(key+".retry_min", r.RetryMin, confDefaultRetryMin)
	cfg.RetryMax = c.Duration(key+".retry_max", r.RetryMax, confDefaultRetryMax)
	if cfg.RetryMax < cfg.RetryMin && !c.FailedAt(key+".retry_min") && !c.FailedAt(key+".retry_max") {
		c.Fail(key+".retry_max", "%s is less than %s.retry_min (%s)", cfg.RetryMax, key, cfg.RetryMin)
	}
	cfg.Heartbeat = c.DurationOrZero(key+".heartbeat", r.Heartbeat, 0)
	cfg.Metrics = c.OptAbsPath(key+".metrics", r.Metrics)
	if cfg.Metrics != "" && !strings.HasSuffix(cfg.Metrics, ".prom") {
		c.Fail(key+".metrics", "%q must end in .prom (the node_exporter textfile collector reads only *.prom files)", cfg.Metrics)
	}
	cfg.LogLevel = c.LogLevel(key+".log_level", r.LogLevel)

	if c.NeedsTLS(key+".tls", key+".signer", signer, r.TLS != nil, "the relay reaches the signer over TCP") {
		cfg.TLS = r.TLS.Validate(c, key+".tls")
	}

	cfg.Bridge = f.Bridge.Validate(c, "bridge")
	return cfg
}
