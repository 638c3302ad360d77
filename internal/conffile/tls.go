package conffile

import (
	"regexp"
)

// TLSClient is a client's mutual TLS 1.3 set-up. Exactly one of Key
// and KeyLabel is set; Token is set exactly when KeyLabel is.
type TLSClient struct {
	Cert, Key, CA string // PEM files: this side's certificate and key, the server's CA
	ServerName    string // the name the server's certificate must carry
	// KeyLabel names this side's private key on Token instead of Key: an
	// ECDSA key pair made there by `nanokms token tls-key`, which never
	// leaves the token (package hsm/tlskey).
	KeyLabel string
	Token    *TLSToken
}

// TLSToken is the PKCS#11 token that holds a TLS key ([relay.tls.token]).
// Exactly one of PINFile and PINEnv is set.
type TLSToken struct {
	Module  string // absolute path of the PKCS#11 library
	Label   string // the token's label, 1 to 32 bytes
	PINFile string // absolute path of a file holding the user PIN
	PINEnv  string // name of an environment variable holding the user PIN
}

// TLSServer is a server's mutual TLS 1.3 set-up, the [*.tls] section of
// every role that serves (the signer's and the gateway's). Exactly one of
// Key and KeyLabel is set.
type TLSServer struct {
	Cert, Key, ClientCA string // PEM files: the server's certificate chain and key, the clients' CA
	// KeyLabel names the server's private key on the role's token instead
	// of Key (the signer's [token]): an ECDSA key pair made there by
	// `nanokms token tls-key`, which never leaves the token. Only roles that
	// have a token accept it (see TLSServerSection.Validate).
	KeyLabel          string
	AllowedIdentities []string // client certificate DNS SANs or common names allowed in
}

// TLSClientSection is the shape of a client's [*.tls] (the relay's); its
// Validate makes the TLSClient.
type TLSClientSection struct {
	Cert       Value            `toml:"cert"`
	Key        Value            `toml:"key"`
	KeyLabel   Value            `toml:"key_label"`
	CA         Value            `toml:"ca"`
	ServerName Value            `toml:"server_name"`
	Token      *TLSTokenSection `toml:"token"` // nil when [relay.tls.token] is absent
}

// TLSTokenSection is the shape of a client's [*.tls.token].
type TLSTokenSection struct {
	Module  Value `toml:"module"`
	Label   Value `toml:"label"`
	PINFile Value `toml:"pin_file"`
	PINEnv  Value `toml:"pin_env"`
}

// TLSServerSection is the shape of a server's [*.tls]; its Validate
// makes the TLSServer.
type TLSServerSection struct {
	Cert              Value `toml:"cert"`
	Key               Value `toml:"key"`
	KeyLabel          Value `toml:"key_label"`
	ClientCA          Value `toml:"client_ca"`
	AllowedIdentities Value `toml:"allowed_identities"`
}

// Validate checks a client's [*.tls] at key: every file, the key (a file,
// or a label and the [*.tls.token] it is on) and the server's name.
func (f *TLSClientSection) Validate(c *Checker, key string) *TLSClient {
	t := &TLSClient{
		Cert:       c.AbsPath(key+".cert", f.Cert),
		CA:         c.AbsPath(key+".ca", f.CA),
		ServerName: c.StrCheck(key+".server_name", f.ServerName, CheckHost),
	}
	switch {
	case f.Key.IsSet() && f.KeyLabel.IsSet():
		c.Fail(key+".key_label", "not allowed together with %s.key: the private key is either a file or a key on a token", key)
	case f.KeyLabel.IsSet():
		t.KeyLabel = c.StrCheck(key+".key_label", f.KeyLabel, CheckKeyLabel)
		if f.Token == nil {
			c.Fail(key+".token", "required with %s.key_label: the token (module, label, PIN source) that holds the key", key)
		}
	case f.Key.IsSet():
		t.Key = c.AbsPath(key+".key", f.Key)
	default:
		c.Fail(key+".key", "required (or %s.key_label, the label of a key on a token made by 'nanokms token tls-key')", key)
	}
	if f.Token != nil {
		if !f.KeyLabel.IsSet() {
			c.Fail(key+".token", "only allowed with %s.key_label (a key on the token)", key)
		}
		t.Token = f.Token.Validate(c, key+".token")
	}
	return t
}

// confEnvVarRE matches an environment variable name.
var envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks a [*.tls.token] at key: the module, the token's label
// and exactly one PIN source.
func (f *TLSTokenSection) Validate(c *Checker, key string) *TLSToken {
	t := &TLSToken{
		Module:  c.AbsPath(key+".module", f.Module),
		Label:   c.Str(key+".label", f.Label),
		PINFile: c.OptAbsPath(key+".pin_file", f.PINFile),
		PINEnv:  c.OptStr(key+".pin_env", f.PINEnv),
	}
	if len(t.Label) > 32 {
		c.Fail(key+".label", "%q is longer than the 32 bytes of a token label", t.Label)
	}
	switch {
	case c.FailedAt(key+".pin_file") || c.FailedAt(key+".pin_env"):
		// Already reported.
	case t.PINEnv != "" && !envVarRE.MatchString(t.PINEnv):
		c.Fail(key+".pin_env", "%q is not an environment variable name", t.PINEnv)
	case t.PINFile != "" && t.PINEnv != "":
		c.Fail(key+".pin_env", "not allowed together with %s.pin_file: give exactly one PIN source", key)
	case t.PINFile == "" && t.PINEnv == "":
		c.Fail(key+".pin_file", "required (or %s.pin_env): give exactly one PIN source", key)
	}
	return t
}

// Validate checks a server's [*.tls] at key: every file, the key and at
// least one identity. token names the section of the token that holds a
// key given by key_label ("token" for the signer's [token]); "" for a role
// with no token, which refuses key_label.
func (f *TLSServerSection) Validate(c *Checker, key, token string) *TLSServer {
	t := &TLSServer{
		Cert:     c.AbsPath(key+".cert", f.Cert),
		ClientCA: c.AbsPath(key+".client_ca", f.ClientCA),
	}
	switch {
	case f.KeyLabel.IsSet() && token == "":
		c.Fail(key+".key_label", "not supported here: this role has no token to hold its TLS key (give %s.key, a PEM file)", key)
	case f.Key.IsSet() && f.KeyLabel.IsSet():
		c.Fail(key+".key_label", "not allowed together with %s.key: the private key is either a file or a key on the token", key)
	case f.KeyLabel.IsSet():
		t.KeyLabel = c.StrCheck(key+".key_label", f.KeyLabel, CheckKeyLabel)
	case f.Key.IsSet():
		t.Key = c.AbsPath(key+".key", f.Key)
	case token == "":
		c.Fail(key+".key", "required")
	default:
		c.Fail(key+".key", "required (or %s.key_label, the label of a key on the [%s] token made by 'nanokms token tls-key')", key, token)
	}
	if !f.AllowedIdentities.IsSet() {
		c.Fail(key+".allowed_identities", "required: the client identities (certificate DNS SAN or CN) allowed to connect")
		return t
	}
	t.AllowedIdentities = c.UniqueStrings(key+".allowed_identities", f.AllowedIdentities, CheckPrintable)
	if list, isArray := f.AllowedIdentities.Raw().([]any); isArray && len(list) == 0 {
		c.Fail(key+".allowed_identities", "must list at least one identity")
	}
	return t
}

// NeedsTLS records the rule every role applies to its [*.tls] section
// (present reports whether it is): required when the endpoint ep, read at
// epKey, is TCP, refused when it is a Unix socket. what says what TLS
// protects, for the message ("the signer serves TCP"). It returns whether
// the section is to be validated.
func (c *Checker) NeedsTLS(key, epKey string, ep Endpoint, present bool, what string) bool {
	switch {
	case ep.Network == "tcp" && !present:
		c.Fail(key, "required when %s is tcp://: %s only with mutual TLS 1.3", epKey, what)
	case ep.Network == "unix" && present:
		c.Fail(key, "only allowed when %s is tcp:// (a Unix socket is protected by its file permissions)", epKey)
	default:
		return present
	}
	return false
}
