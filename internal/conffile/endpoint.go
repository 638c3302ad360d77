package conffile

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// MaxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes with the terminating NUL).
const MaxSocketPath = 107

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// Endpoint is a network address written "unix:///absolute/path" or
// "tcp://host:port".
type Endpoint struct {
	Network string // "unix" or "tcp"
	Address string // the absolute socket path, or host:port
}

// String returns the endpoint as it is written in a file
// ("unix:///run/nanokms/signer.sock", "tcp://10.0.0.1:7070").
func (e Endpoint) String() string { return e.Network + "://" + e.Address }

// Use says what an address is for. It changes only the advice in error
// messages.
type Use int

const (
	// Listen: an address to listen on.
	Listen Use = iota
	// Dial: an address to connect to.
	Dial
)

// ParseEndpoint parses "unix:///absolute/path" (at most MaxSocketPath
// bytes of path) or "tcp://host:port", where host is an IP address (IPv6 in
// brackets) or a host name, and port is 1 to 65535. The error says what is
// wrong, quoting s.
func ParseEndpoint(s string, use Use) (Endpoint, error) {
	ep, msg := parseEndpoint(s, use)
	if msg != "" {
		return Endpoint{}, errors.New(msg)
	}
	return ep, nil
}

func parseEndpoint(s string, use Use) (ep Endpoint, msg string) {
	const form = "must be unix:///absolute/path or tcp://host:port"
	if p, ok := strings.CutPrefix(s, "unix://"); ok {
		switch {
		case !strings.HasPrefix(p, "/"):
			return Endpoint{}, fmt.Sprintf("%s: %q has no absolute socket path (write three slashes: unix:///run/...)", form, s)
		case len(p) > MaxSocketPath:
			return Endpoint{}, fmt.Sprintf("the socket path is longer than %d bytes", MaxSocketPath)
		case strings.ContainsRune(p, 0):
			return Endpoint{}, "the socket path contains a NUL byte"
		}
		return Endpoint{Network: "unix", Address: p}, ""
	}
	if hp, ok := strings.CutPrefix(s, "tcp://"); ok {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return Endpoint{}, fmt.Sprintf("%s: %q has no host:port", form, s)
		}
		if msg := checkHostPort(s, hp, use); msg != "" {
			return Endpoint{}, msg
		}
		return Endpoint{Network: "tcp", Address: hp}, ""
	}
	return Endpoint{}, fmt.Sprintf("%s, not %q", form, s)
}

// checkHostPort checks hp, which net.SplitHostPort accepts, as written in
// s.
func checkHostPort(s, hp string, use Use) string {
	host, port, _ := net.SplitHostPort(hp)
	if host == "" {
		if use == Listen {
			return fmt.Sprintf("%q has no host (write 0.0.0.0 or [::] to listen on every interface)", s)
		}
		return fmt.Sprintf("%q has no host", s)
	}
	if msg := CheckHost(host); msg != "" {
		return msg
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return ""
}

// CheckHost returns "" if host is an IP address (without brackets) or a
// host name, or else what is wrong.
func CheckHost(host string) string {
	if _, err := netip.ParseAddr(host); err != nil && !hostRE.MatchString(host) {
		return fmt.Sprintf("%q is not an IP address or host name", host)
	}
	return ""
}

// Endpoint checks the endpoint field (see ParseEndpoint) when it is set,
// and returns it; the zero Endpoint when it is absent or invalid.
func (c *Checker) Endpoint(field *string, use Use) Endpoint {
	var ep Endpoint
	c.Check(field, func(s string) string {
		var msg string
		ep, msg = parseEndpoint(s, use)
		return msg
	})
	return ep
}

// HostPort checks field, a "host:port" as in a tcp:// endpoint, when it
// is set.
func (c *Checker) HostPort(field *string, use Use) {
	c.Check(field, func(s string) string {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Sprintf("must be host:port, not %q", s)
		}
		return checkHostPort(s, s, use)
	})
}

// CheckURL returns "" if s is an absolute URL with one of schemes (such as
// "https") and a host (an IP address, IPv6 in brackets, or a host name,
// with an optional port from 1 to 65535), or else what is wrong. A URL
// carrying a user name or password is refused: a configuration file holds
// no secret.
func CheckURL(s string, schemes ...string) string {
	want := make([]string, len(schemes))
	for i, sc := range schemes {
		want[i] = sc + "://"
	}
	form := "must be a URL starting with " + strings.Join(want, " or ")
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%s, not %q", form, s)
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	switch {
	case !ok:
		return fmt.Sprintf("%s, not %q", form, s)
	case u.User != nil:
		return fmt.Sprintf("%q carries a user name or password: the configuration file must hold no secret", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("%q has no host", s)
	}
	if msg := CheckHost(u.Hostname()); msg != "" {
		return msg
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != p {
			return fmt.Sprintf("port %q is not a number from 1 to 65535", p)
		}
	}
	return ""
}

// URL checks field, a URL with one of schemes (see CheckURL), when it is
// set.
func (c *Checker) URL(field *string, schemes ...string) {
	c.Check(field, func(s string) string { return CheckURL(s, schemes...) })
}

// HTTPListen checks field, when it is set, as the address of an HTTP
// listener: "host:port" (as in a tcp:// endpoint) or
// "unix:///absolute/path". It returns the endpoint (Network "tcp" or
// "unix"); the zero Endpoint when the key is absent or invalid.
func (c *Checker) HTTPListen(field *string) Endpoint {
	var ep Endpoint
	c.Check(field, func(s string) string {
		if strings.HasPrefix(s, "unix://") {
			var msg string
			ep, msg = parseEndpoint(s, Listen)
			return msg
		}
		if _, _, err := net.SplitHostPort(s); err != nil || strings.Contains(s, "://") {
			return fmt.Sprintf("must be host:port or unix:///absolute/path, not %q", s)
		}
		if msg := checkHostPort(s, s, Listen); msg != "" {
			return msg
		}
		ep = Endpoint{Network: "tcp", Address: s}
		return ""
	})
	return ep
}

// Overlaps reports whether listening on e and on o would collide: the
// same socket path, or the same TCP port on the same host or with either
// on every interface (0.0.0.0, [::]).
func (e Endpoint) Overlaps(o Endpoint) bool {
	if e.Network != o.Network || e.Network == "" {
		return false
	}
	if e.Network == "unix" {
		return filepath.Clean(e.Address) == filepath.Clean(o.Address)
	}
	eh, ep, err1 := net.SplitHostPort(e.Address)
	oh, op, err2 := net.SplitHostPort(o.Address)
	if err1 != nil || err2 != nil || ep != op {
		return false
	}
	any := func(h string) bool { return h == "0.0.0.0" || h == "::" || h == "" }
	return eh == oh || any(eh) || any(oh)
}
