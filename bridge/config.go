package bridge

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/serial"
	"github.com/nanokms/nanokms/internal/conffile"
)

// BridgeConfig is the [bridge] section shared by the relay and the
// gateway: which medium, and where.
type Config struct {
	// Kind is "file" or "serial".
	Kind string
	// File transport: Inbound is the directory this side reads frames
	// from, Outbound the one it writes to (on a USB stick: "to-cold" and
	// "to-hot"). Root is the trusted medium root both lie beneath (the
	// stick's mount point); "" means the directory holding each. Nothing
	// beneath the root is followed if it is a symbolic link.
	Inbound, Outbound string
	Root              string
	// Serial transport: the device and its baud rate; Pace paces writes to
	// the baud rate (for pseudo-terminals, which do not).
	Device string
	Baud   int
	Pace   bool
	// MaxAge refuses frames created longer ago than this (0: no limit);
	// MaxFutureSkew refuses frames created further ahead (default 5m).
	MaxAge        time.Duration
	MaxFutureSkew time.Duration
	// PollInterval is how often a file reader looks for new files.
	PollInterval time.Duration
}

// confBauds are the line speeds bridge.baud accepts: the standard termios
// rates from 9600 up.
var confBauds = []int64{9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600,
	1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000}

type Section struct {
	Kind          conffile.Value `toml:"kind"`
	Inbound       conffile.Value `toml:"inbound"`
	Outbound      conffile.Value `toml:"outbound"`
	Root          conffile.Value `toml:"root"`
	Device        conffile.Value `toml:"device"`
	Baud          conffile.Value `toml:"baud"`
	Pace          conffile.Value `toml:"pace"`
	MaxAge        conffile.Value `toml:"max_age"`
	MaxFutureSkew conffile.Value `toml:"max_future_skew"`
	PollInterval  conffile.Value `toml:"poll_interval"`
}

// confPathWithin reports whether path p is inside directory dir (both clean).
func confPathWithin(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// confDefaultMaxAge is bridge.max_age's default.
const confDefaultMaxAge = 24 * time.Hour

// Validate checks [bridge] at key. Keys of the other kind are refused.
func (f *Section) Validate(c *conffile.Checker, key string) Config {
	b := Config{Kind: c.OneOf(key+".kind", f.Kind, "", "file", "serial")}
	// allowed reports whether the key name, of the bridges of kind, is to
	// be read; it refuses the key if it is set for another kind. Nothing is
	// said when bridge.kind is itself wrong.
	allowed := func(name string, v conffile.Value, kind string) bool {
		if v.IsSet() && b.Kind != kind && b.Kind != "" {
			c.Fail(key+"."+name, "only allowed when %s.kind = %q", key, kind)
		}
		return b.Kind == kind
	}

	if allowed("inbound", f.Inbound, "file") {
		b.Inbound = c.AbsPath(key+".inbound", f.Inbound)
	}
	if allowed("outbound", f.Outbound, "file") {
		b.Outbound = c.AbsPath(key+".outbound", f.Outbound)
		if b.Inbound != "" && b.Outbound != "" {
			in, out := filepath.Clean(b.Inbound), filepath.Clean(b.Outbound)
			switch {
			case in == out:
				c.Fail(key+".outbound", "must differ from %s.inbound (both are %q)", key, in)
			case confPathWithin(out, in):
				c.Fail(key+".outbound", "must not be inside %s.inbound (%q)", key, in)
			case confPathWithin(in, out):
				c.Fail(key+".outbound", "must not contain %s.inbound (%q)", key, in)
			}
		}
	}
	if allowed("root", f.Root, "file") {
		if b.Root = c.OptAbsPath(key+".root", f.Root); b.Root != "" {
			root := filepath.Clean(b.Root)
			for _, d := range []struct{ name, path string }{{"inbound", b.Inbound}, {"outbound", b.Outbound}} {
				if d.path != "" && !confPathWithin(filepath.Clean(d.path), root) {
					c.Fail(key+".root", "must contain %s.%s (%q)", key, d.name, d.path)
				}
			}
		}
	}
	if allowed("device", f.Device, "serial") {
		b.Device = c.AbsPath(key+".device", f.Device)
	}
	if allowed("baud", f.Baud, "serial") {
		b.Baud = serial.DefaultBaud
		n := c.Int(key+".baud", f.Baud, serial.DefaultBaud)
		if slices.Contains(confBauds, n) {
			b.Baud = int(n)
		} else {
			c.Fail(key+".baud", "must be a standard rate from 9600 to 4000000 (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600...), not %d", n)
		}
	}
	if allowed("pace", f.Pace, "serial") {
		b.Pace = c.Bool(key+".pace", f.Pace, false)
	}
	b.MaxAge = c.DurationOrZero(key+".max_age", f.MaxAge, confDefaultMaxAge)
	b.MaxFutureSkew = c.Duration(key+".max_future_skew", f.MaxFutureSkew, filemedium.DefaultMaxFutureSkew)
	if allowed("poll_interval", f.PollInterval, "file") {
		b.PollInterval = c.Duration(key+".poll_interval", f.PollInterval, filemedium.DefaultPollInterval)
	}
	return b
}
