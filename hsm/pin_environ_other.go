//go:build !linux

package hsm

// clearEnvironEntries does nothing outside Linux: nanokms runs on Linux,
// where the environment block is cleared (see the Linux twin).
func clearEnvironEntries(string) error { return nil }
