// Package conffile reads strict TOML configuration files into the
// configuration types themselves: unknown keys and wrong types are errors
// naming their key path and place; never logs.
//
// # How a configuration is declared
//
// A role's configuration is a Go struct whose fields carry toml tags, the
// only place key names are spelled. A field is one of:
//
//   - a leaf, one TOML value, of one of the types below;
//   - a struct, or a pointer to a struct (nil when the table is absent): a
//     table; an embedded struct with a toml tag is a table too, its fields
//     promoted in Go;
//   - a slice of structs: an array of tables ([[name]], or an inline array
//     of inline tables);
//   - a struct tagged toml:",inline": its keys are in the enclosing table;
//   - a field with no toml tag, or toml:"-": derived, never read from the
//     file.
//
// The leaf types, and what their values are written as:
//
//	string             a string
//	bool               true or false
//	int, int64         an integer
//	time.Duration      a string in Go's notation: "24h", "1h30m"; positive
//	[]string           an array of strings
//	*nano.Amount       a string in raw ("1000", "1000 raw") or XNO ("1.5 XNO"); nil when absent
//	nano.PublicKey     a nano_ (or xrb_) address, or 64 hex digits of public key
//	[]nano.PublicKey   an array of those
//	ed25519.PublicKey  64 hex digits: an RFC 8032 Ed25519 public key
//
// A leaf's conf tag says what is per field and declarative, options
// separated by commas:
//
//	required          the key must be given ("required"); a string must not be ""
//	default=VALUE     the value when the key is absent (string, bool, integer, duration)
//	zero              a duration may be "0s"
//	oneof=a|b|c       a string is one of these (with required or a default)
//	abspath           a string, or each element of a []string, is an absolute path
//	unique            a []string or []nano.PublicKey lists nothing twice
//
// Then, bottom-up (a table's own tables first, in field order), every
// struct whose pointer has a method CheckConf(*Checker) is called for what
// a tag cannot say: rules across fields, derived fields, checks of a value's
// contents. It names keys by their fields' addresses, without spelling
// them again (c.Key(&cfg.State), c.IsSet(&cfg.Pace), c.Failed(&cfg.Kind),
// c.FailAt(&cfg.Outbound, ...)), with the Checker's helpers for the checks
// roles share.
//
// # How a file is read
//
// Decode (or Load, which reads the file first) derives from the
// configuration type a shape (reflect.StructOf, made once per type): the
// same toml tags, every leaf a value kept untyped. The document is decoded
// into the shape; the TOML decoder's own report of undecoded keys
// (MetaData.Undecoded) gives the unknown keys, at any depth, each with its
// full key path, array indices included ("groups[1].tiers[0].quorom");
// because the decoder matches names case-insensitively, a key that differs
// from a known one only in case is refused too ("did you mean"), as is a
// table or array of tables of another type. Then each value is typed into
// its field by its leaf type's reader, in field order, which records an
// *Error naming the key when the value is absent and required, of the
// wrong type or malformed; and CheckConf is called. All problems are
// collected, in a stable order, and returned together (Join); each is
// placed at the line and column where the decoder records its key, when it
// records one (see Error).
//
// The TLS sections are declared once here, for every role: TLSServer (the
// signer's and the gateway's [*.tls]) and TLSClient with its TLSToken (the
// relay's), with Checker.NeedsTLS for the rule that a TCP endpoint needs
// TLS and a Unix socket takes none.
//
// # What this package must never do
//
// Its only I/O is Load reading the file it is given; it holds no global
// mutable state but the cache of shapes, and never logs. Errors quote
// values from the file: a configuration file read with it must hold no
// secret.
package conffile
