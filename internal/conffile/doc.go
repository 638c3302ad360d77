// Package conffile reads strict TOML configuration files: unknown keys and
// wrong types are errors naming their key path; never logs.
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
// Parse decodes a document into such a shape. It first walks the document
// against the shape, with exact (case-sensitive) key names, reporting every
// unknown key at any depth with its full key path, array indices included
// ("groups[1].tiers[0].quorom"), and refusing a table or array of tables of
// another type. Values are left untyped: the caller then reads each with a
// Checker method (Str, Duration, Amount, Accounts...), which records an
// *Error naming the key when the value is absent, of the wrong type or
// malformed. Cross-field rules are recorded with Checker.Fail, naming the
// key at fault. All problems are collected, in a stable order, and returned
// together (Join).
//
// # What this package must never do
//
// It performs no I/O, holds no global mutable state, and never logs.
// Errors quote values from the file: a configuration file read with it must
// hold no secret.
package conffile
