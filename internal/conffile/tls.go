package conffile

import "strings"

// TLSClient is a client's mutual TLS 1.3 set-up, the [*.tls] section of a
// role that dials (the relay's). Exactly one of Key and KeyLabel is set;
// Token is set exactly when KeyLabel is.
type TLSClient struct {
	Cert string `toml:"cert" conf:"required,abspath"` // PEM: this side's certificate chain
	Key  string `toml:"key" conf:"abspath"`           // PEM: this side's private key
	// KeyLabel names this side's private key on Token instead of Key: an
	// ECDSA key pair made there by `nanokms token tls-key`, which never
	// leaves the token (package hsm/tlskey).
	KeyLabel   string    `toml:"key_label"`
	CA         string    `toml:"ca" conf:"required,abspath"`  // PEM: the server's CA
	ServerName string    `toml:"server_name" conf:"required"` // the name the server's certificate must carry
	Token      *TLSToken `toml:"token"`                       // [*.tls.token]; nil when absent
}

// TLSToken is the PKCS#11 token that holds a client's TLS key
// ([relay.tls.token]). Exactly one of PINFile and PINEnv is set.
type TLSToken struct {
	Module  string `toml:"module" conf:"required,abspath"` // the PKCS#11 library
	Label   string `toml:"label" conf:"required"`          // the token's label, 1 to 32 bytes
	PINFile string `toml:"pin_file" conf:"abspath"`        // a file holding the user PIN
	PINEnv  string `toml:"pin_env"`                        // an environment variable holding the user PIN
}

// TLSServer is a server's mutual TLS 1.3 set-up, the [*.tls] section of
// every role that serves (the signer's and the gateway's). Exactly one of
// Key and KeyLabel is set. The role checks it with Check, which knows
// whether the role has a token.
type TLSServer struct {
	Cert string `toml:"cert" conf:"required,abspath"` // PEM: the server's certificate chain
	Key  string `toml:"key" conf:"abspath"`           // PEM: the server's private key
	// KeyLabel names the server's private key on the role's token instead
	// of Key (the signer's [token]): an ECDSA key pair made there by
	// `nanokms token tls-key`, which never leaves the token. Only roles that
	// have a token accept it.
	KeyLabel          string   `toml:"key_label"`
	ClientCA          string   `toml:"client_ca" conf:"required,abspath"` // PEM: the clients' CA
	AllowedIdentities []string `toml:"allowed_identities" conf:"unique"`  // client certificate DNS SANs or common names allowed in
}

// CheckConf checks the server's name and the private key: a file, or a
// label and the [*.tls.token] it is on.
func (t *TLSClient) CheckConf(c *Checker) {
	c.Check(&t.ServerName, CheckHost)
	switch {
	case c.IsSet(&t.Key) && c.IsSet(&t.KeyLabel):
		c.FailAt(&t.KeyLabel, "not allowed together with %s: the private key is either a file or a key on a token", c.Key(&t.Key))
	case c.IsSet(&t.KeyLabel):
		c.KeyLabel(&t.KeyLabel)
		if t.Token == nil {
			c.FailAt(&t.Token, "required with %s: the token (module, label, PIN source) that holds the key", c.Key(&t.KeyLabel))
		}
	case c.IsSet(&t.Key):
		c.Require(&t.Key)
	default:
		c.FailAt(&t.Key, "required (or %s, the label of a key on a token made by 'nanokms token tls-key')", c.Key(&t.KeyLabel))
	}
	if t.Token != nil && !c.IsSet(&t.KeyLabel) {
		c.FailAt(&t.Token, "only allowed with %s (a key on the token)", c.Key(&t.KeyLabel))
	}
}

// CheckConf checks the token's label and that exactly one PIN source is
// given.
func (t *TLSToken) CheckConf(c *Checker) {
	c.Check(&t.Label, CheckTokenLabel)
	c.PINSource(&t.PINFile, &t.PINEnv)
}

// Check checks a server's [*.tls] for its role: the key and at least one
// identity. token names the section of the token that holds a key given
// by key_label ("token" for the signer's [token]); "" for a role with no
// token, which refuses key_label. The role calls it from its CheckConf
// when NeedsTLS says so.
func (t *TLSServer) Check(c *Checker, token string) {
	switch {
	case c.IsSet(&t.KeyLabel) && token == "":
		c.FailAt(&t.KeyLabel, "not supported here: this role has no token to hold its TLS key (give %s, a PEM file)", c.Key(&t.Key))
	case c.IsSet(&t.Key) && c.IsSet(&t.KeyLabel):
		c.FailAt(&t.KeyLabel, "not allowed together with %s: the private key is either a file or a key on the token", c.Key(&t.Key))
	case c.IsSet(&t.KeyLabel):
		c.KeyLabel(&t.KeyLabel)
	case c.IsSet(&t.Key):
		c.Require(&t.Key)
	case token == "":
		c.FailAt(&t.Key, "required")
	default:
		c.FailAt(&t.Key, "required (or %s, the label of a key on the [%s] token made by 'nanokms token tls-key')", c.Key(&t.KeyLabel), token)
	}
	if !c.IsSet(&t.AllowedIdentities) {
		c.FailAt(&t.AllowedIdentities, "required: the client identities (certificate DNS SAN or CN) allowed to connect")
		return
	}
	c.CheckEach(&t.AllowedIdentities, CheckPrintable)
	if len(t.AllowedIdentities) == 0 && !c.Failed(&t.AllowedIdentities) {
		c.FailAt(&t.AllowedIdentities, "must list at least one identity")
	}
}

// NeedsTLS applies the rule of every role's [*.tls] section, tls (a
// pointer to the field holding the section's pointer, nil when absent):
// required when the endpoint field is tcp://, refused when it is a Unix
// socket. what says what TLS protects, for the message ("the signer
// serves TCP"). It returns whether the section is to be checked further:
// it is present, and allowed or the endpoint is itself wrong.
func (c *Checker) NeedsTLS(tls any, endpoint *string, what string) bool {
	present := c.IsSet(tls)
	if c.Failed(endpoint) || *endpoint == "" {
		return present
	}
	tcp := strings.HasPrefix(*endpoint, "tcp://")
	switch {
	case tcp && !present:
		c.FailAt(tls, "required when %s is tcp://: %s only with mutual TLS 1.3", c.Key(endpoint), what)
	case !tcp && present:
		c.FailAt(tls, "only allowed when %s is tcp:// (a Unix socket is protected by its file permissions)", c.Key(endpoint))
	default:
		return present
	}
	return false
}
