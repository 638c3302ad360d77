package bridge_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/serial"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/conffile/conftest"
)

// The [bridge] section is the same in the relay's and the gateway's files
// (but for the directions): its cases are run here, once, on a file that
// holds only it.
type file struct {
	Bridge bridge.Config `toml:"bridge"`
}

const (
	inbound      = `inbound = "/media/nanokms/to-cold"`
	outbound     = `outbound = "/media/nanokms/to-hot"`
	fileKeys     = "kind = \"file\"\n" + inbound + "\n" + outbound + "\n"
	minimal      = "[bridge]\n" + fileKeys
	serialBridge = "kind = \"serial\"\ndevice = \"/dev/ttyUSB0\"\n"
)

// parse decodes src as a file of one [bridge] section.
func parse(t *testing.T, src string) (*bridge.Config, error) {
	t.Helper()
	f, errs := conffile.Decode[file]([]byte(src))
	if len(errs) > 0 {
		if f != nil {
			t.Error("Decode returned a configuration with errors")
		}
		return nil, conffile.Join(errs)
	}
	return &f.Bridge, nil
}

func TestConfigDefaults(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      bridge.Config
	}{
		{"file", minimal, bridge.Config{Kind: "file", Inbound: "/media/nanokms/to-cold", Outbound: "/media/nanokms/to-hot",
			MaxAge: 24 * time.Hour, MaxFutureSkew: filemedium.DefaultMaxFutureSkew, PollInterval: filemedium.DefaultPollInterval}},
		{"serial", "[bridge]\n" + serialBridge, bridge.Config{Kind: "serial", Device: "/dev/ttyUSB0", Baud: serial.DefaultBaud,
			MaxAge: 24 * time.Hour, MaxFutureSkew: filemedium.DefaultMaxFutureSkew}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parse(t, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*b, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *b, tt.want)
			}
		})
	}
}

func TestConfigValid(t *testing.T) {
	tests := []struct {
		name  string
		edits []conftest.Edit
		check func(t *testing.T, b *bridge.Config)
	}{
		{"serial", []conftest.Edit{conftest.Replace(fileKeys, serialBridge+"baud = 921600\npace = true\nmax_age = \"0s\"\n")}, func(t *testing.T, b *bridge.Config) {
			if b.Kind != "serial" || b.Device != "/dev/ttyUSB0" || b.Baud != 921600 || !b.Pace || b.MaxAge != 0 || b.PollInterval != 0 || b.Inbound != "" {
				t.Errorf("bridge = %+v", b)
			}
		}},
		{"serial 9600", []conftest.Edit{conftest.Replace(fileKeys, "kind = \"serial\"\ndevice = \"/dev/ttyAMA0\"\nbaud = 9600\n")}, func(t *testing.T, b *bridge.Config) {
			if b.Kind != "serial" || b.Baud != 9600 {
				t.Errorf("bridge = %+v", b)
			}
		}},
		{"durations", []conftest.Edit{conftest.Add("max_age = \"1h\"\nmax_future_skew = \"30s\"\npoll_interval = \"1s\"")}, func(t *testing.T, b *bridge.Config) {
			if b.MaxAge != time.Hour || b.MaxFutureSkew != 30*time.Second || b.PollInterval != time.Second {
				t.Errorf("bridge = %+v", b)
			}
		}},
		{"sibling directories with a common prefix", []conftest.Edit{conftest.Replace(`"/media/nanokms/to-hot"`, `"/media/nanokms/to-cold2"`)}, nil},
		{"medium root", []conftest.Edit{conftest.Add(`root = "/media"`)}, func(t *testing.T, b *bridge.Config) {
			if b.Root != "/media" || b.Inbound != "/media/nanokms/to-cold" {
				t.Errorf("bridge = %+v", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parse(t, conftest.Apply(t, minimal, tt.edits...))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	in := "/media/nanokms/to-cold"
	toSerial := conftest.Replace(fileKeys, serialBridge)
	tests := []struct {
		name     string
		edits    []conftest.Edit
		key, msg string
	}{
		{"no bridge", []conftest.Edit{conftest.Replace(minimal, "")}, "bridge.kind", `required: "file" or "serial"`},
		{"kind other", []conftest.Edit{conftest.Replace(`kind = "file"`, `kind = "usb"`)}, "bridge.kind", `must be "file" or "serial", not "usb"`},
		{"kind not a string", []conftest.Edit{conftest.Replace(`kind = "file"`, `kind = 1`)}, "bridge.kind", "must be a string, not an integer"},
		{"inbound missing", []conftest.Edit{conftest.Replace(inbound, "")}, "bridge.inbound", "required"},
		{"inbound relative", []conftest.Edit{conftest.Replace(inbound, `inbound = "to-cold"`)}, "bridge.inbound", "absolute path"},
		{"outbound missing", []conftest.Edit{conftest.Replace(outbound, "")}, "bridge.outbound", "required"},
		{"outbound empty", []conftest.Edit{conftest.Replace(outbound, `outbound = ""`)}, "bridge.outbound", "must not be empty"},
		{"outbound same", []conftest.Edit{conftest.Replace(outbound, `outbound = "`+in+`/"`)}, "bridge.outbound", "must differ from bridge.inbound"},
		{"outbound inside", []conftest.Edit{conftest.Replace(outbound, `outbound = "`+in+`/done"`)}, "bridge.outbound", "must not be inside bridge.inbound"},
		{"outbound around", []conftest.Edit{conftest.Replace(outbound, `outbound = "/media"`)}, "bridge.outbound", "must not contain bridge.inbound"},
		{"root relative", []conftest.Edit{conftest.After(outbound, `root = "media"`)}, "bridge.root", "absolute path"},
		{"root beside the directories", []conftest.Edit{conftest.After(outbound, `root = "/mnt"`)}, "bridge.root", "must contain bridge.inbound"},
		{"root the inbound directory", []conftest.Edit{conftest.After(outbound, `root = "`+in+`"`)}, "bridge.root", "must contain bridge.inbound"},
		{"root with serial", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, `root = "/media"`)}, "bridge.root", `only allowed when bridge.kind = "file"`},
		{"device with file", []conftest.Edit{conftest.After(outbound, `device = "/dev/ttyUSB0"`)}, "bridge.device", `only allowed when bridge.kind = "serial"`},
		{"baud with file", []conftest.Edit{conftest.After(outbound, `baud = 9600`)}, "bridge.baud", `only allowed when bridge.kind = "serial"`},
		{"pace with file", []conftest.Edit{conftest.After(outbound, `pace = false`)}, "bridge.pace", `only allowed when bridge.kind = "serial"`},
		{"device missing", []conftest.Edit{toSerial, conftest.Replace(`device = "/dev/ttyUSB0"`, "")}, "bridge.device", "required"},
		{"device relative", []conftest.Edit{toSerial, conftest.Replace(`device = "/dev/ttyUSB0"`, `device = "ttyUSB0"`)}, "bridge.device", "absolute path"},
		{"baud odd", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, `baud = 115201`)}, "bridge.baud", "must be a standard rate from 9600 to 4000000"},
		{"baud slow", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, `baud = 4800`)}, "bridge.baud", "not 4800"},
		{"baud string", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, `baud = "9600"`)}, "bridge.baud", "must be an integer, not a string"},
		{"pace string", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, `pace = "yes"`)}, "bridge.pace", "must be true or false"},
		{"inbound with serial", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, inbound)}, "bridge.inbound", `only allowed when bridge.kind = "file"`},
		{"poll_interval with serial", []conftest.Edit{toSerial, conftest.After(`device = "/dev/ttyUSB0"`, `poll_interval = "1s"`)}, "bridge.poll_interval", `only allowed when bridge.kind = "file"`},
		{"max_age negative", []conftest.Edit{conftest.After(outbound, `max_age = "-1h"`)}, "bridge.max_age", "must not be negative"},
		{"max_age no unit", []conftest.Edit{conftest.After(outbound, `max_age = "24"`)}, "bridge.max_age", "must be a duration"},
		{"max_future_skew zero", []conftest.Edit{conftest.After(outbound, `max_future_skew = "0s"`)}, "bridge.max_future_skew", "must be positive"},
		{"poll_interval zero", []conftest.Edit{conftest.After(outbound, `poll_interval = "0s"`)}, "bridge.poll_interval", "must be positive"},
		{"poll_interval integer", []conftest.Edit{conftest.After(outbound, `poll_interval = 200`)}, "bridge.poll_interval", "must be a string, not an integer"},

		{"unknown key", []conftest.Edit{conftest.Add(`dir = "/x"`)}, "bridge.dir", "unknown key"},
		{"unknown quoted key", []conftest.Edit{conftest.Add(`"max age" = "1h"`)}, `bridge."max age"`, "unknown key"},
		{"key case", []conftest.Edit{conftest.Add(`Kind = "serial"`)}, "bridge.Kind", `did you mean "kind"`},
		{"an array of tables", []conftest.Edit{conftest.Replace("[bridge]", "[[bridge]]")}, "bridge", "must be a table ([bridge]), not an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parse(t, conftest.Apply(t, minimal, tt.edits...))
			if b != nil {
				t.Error("a configuration with an error")
			}
			conftest.WantError(t, err, tt.key, tt.msg)
		})
	}
}

// TestConfigKindAlone checks that nothing more is said of the other keys
// when bridge.kind is itself wrong.
func TestConfigKindAlone(t *testing.T) {
	_, err := parse(t, "[bridge]\nkind = \"usb\"\ndevice = \"/dev/ttyUSB0\"\n")
	if errs := conftest.Errors(t, err); len(errs) != 1 || errs[0].Key != "bridge.kind" {
		t.Errorf("errors:\n%v", err)
	}
}
