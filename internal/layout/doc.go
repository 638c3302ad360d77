// Package layout holds no code: its test checks the air gap in the
// module's import graph (see layout_test.go).
package layout
