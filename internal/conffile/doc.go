// Package conffile reads strict TOML configuration files: unknown keys and
// wrong types are errors naming their key path and place; never logs.
//
// # How a file is read
//
// A configuration file's shape is declared as Go structs whose fields carry
// toml tags (the only place key names are spelled). A field is one of:
//
//   - a Value: one TOML value, captured untyped;
//   - a struct, or a pointer to a struct (nil when the table is absent): a
//     table;
//   - a slice of structs: an array of tables ([[name]], or an inline array
//     of inline tables).
//
// Parse decodes a document into such a shape. The TOML decoder's own
// report of undecoded keys (MetaData.Undecoded) gives the unknown keys, at
// any depth, each reported with its full key path, array indices included
// ("groups[1].tiers[0].quorom"); because the decoder matches names
// case-insensitively, Parse also refuses a key that differs from a known
// one only in case ("did you mean"), and refuses a table or array of
// tables of another type. Values are left untyped: the caller then reads
// each with a Checker method (Str, Duration, Amount, Accounts...), which
// records an *Error naming the key when the value is absent, of the wrong
// type or malformed. Cross-field rules are recorded with Checker.Fail,
// naming the key at fault. All problems are collected, in a stable order,
// and returned together (Join); each is placed at the line and column
// where the decoder records its key, when it records one (see Error).
//
// The TLS sections are declared once here, for every role:
// TLSServerSection (the signer's and the gateway's [*.tls]) and
// TLSClientSection (the relay's), with Checker.NeedsTLS for the rule that
// a TCP endpoint needs TLS and a Unix socket takes none.
//
// # What this package must never do
//
// It performs no I/O, holds no global mutable state, and never logs.
// Errors quote values from the file: a configuration file read with it must
// hold no secret.
package conffile
