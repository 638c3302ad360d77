package bridge

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nanokms/nanokms/internal/conffile"
)

// Config is the [bridge] section shared by the relay and the gateway:
// which medium, and where. Its toml tags declare the section's keys (see
// package conffile); CheckConf checks what depends on the kind.
type Config struct {
	// Kind is "file" or "serial".
	Kind string `toml:"kind" conf:"required,oneof=file|serial"`
	// File transport: Inbound is the directory this side reads frames
	// from, Outbound the one it writes to (on a USB stick: "to-cold" and
	// "to-hot"). Root is the trusted medium root both lie beneath (the
	// stick's mount point); "" means the directory holding each. Nothing
	// beneath the root is followed if it is a symbolic link.
	Inbound  string `toml:"inbound" conf:"abspath"`
	Outbound string `toml:"outbound" conf:"abspath"`
	Root     string `toml:"root" conf:"abspath"`
	// Serial transport: the device and its baud rate (serial.DefaultBaud
	// when absent); Pace paces writes to the baud rate (for
	// pseudo-terminals, which do not).
	Device string `toml:"device" conf:"abspath"`
	Baud   int    `toml:"baud" conf:"default=115200"`
	Pace   bool   `toml:"pace"`
	// MaxAge refuses frames created longer ago than this (0: no limit);
	// MaxFutureSkew refuses frames created further ahead
	// (filemedium.DefaultMaxFutureSkew when absent).
	MaxAge        time.Duration `toml:"max_age" conf:"zero,default=24h"`
	MaxFutureSkew time.Duration `toml:"max_future_skew" conf:"default=5m"`
	// PollInterval is how often a file reader looks for new files
	// (filemedium.DefaultPollInterval when absent).
	PollInterval time.Duration `toml:"poll_interval" conf:"default=200ms"`
}

// confBauds are the line speeds bridge.baud accepts: the standard termios
// rates from 9600 up.
var confBauds = []int{9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600,
	1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000}

// confPathWithin reports whether path p is inside directory dir (both clean).
func confPathWithin(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// CheckConf checks the keys of the kind of bridge: those of the other
// kind are refused (and their defaults dropped), those it needs required,
// the directories apart and beneath the root, the baud rate standard.
// Nothing is said of them when bridge.kind is itself wrong.
func (b *Config) CheckConf(c *conffile.Checker) {
	if c.Failed(&b.Kind) {
		return
	}
	file, serial := b.Kind == "file", b.Kind == "serial"
	c.OnlyWhen(file, fmt.Sprintf("when %s = %q", c.Key(&b.Kind), "file"), &b.Inbound, &b.Outbound, &b.Root, &b.PollInterval)
	c.OnlyWhen(serial, fmt.Sprintf("when %s = %q", c.Key(&b.Kind), "serial"), &b.Device, &b.Baud, &b.Pace)
	if serial {
		c.Require(&b.Device)
		if !c.Failed(&b.Baud) && !slices.Contains(confBauds, b.Baud) {
			c.FailAt(&b.Baud, "must be a standard rate from 9600 to 4000000 (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600...), not %d", b.Baud)
		}
		return
	}
	c.Require(&b.Inbound, &b.Outbound)
	dirs := []*string{&b.Inbound, &b.Outbound}
	ok := func(d *string) bool { return *d != "" && !c.Failed(d) }
	if ok(&b.Inbound) && ok(&b.Outbound) {
		in, out := filepath.Clean(b.Inbound), filepath.Clean(b.Outbound)
		switch {
		case in == out:
			c.FailAt(&b.Outbound, "must differ from %s (both are %q)", c.Key(&b.Inbound), in)
		case confPathWithin(out, in):
			c.FailAt(&b.Outbound, "must not be inside %s (%q)", c.Key(&b.Inbound), in)
		case confPathWithin(in, out):
			c.FailAt(&b.Outbound, "must not contain %s (%q)", c.Key(&b.Inbound), in)
		}
	}
	if ok(&b.Root) {
		for _, d := range dirs {
			if ok(d) && !confPathWithin(filepath.Clean(*d), filepath.Clean(b.Root)) {
				c.FailAt(&b.Root, "must contain %s (%q)", c.Key(d), *d)
			}
		}
	}
}
