//go:build !linux

package signer

import bolt "go.etcd.io/bbolt"

// dropMapped gives the state file's mapped pages back to the kernel on
// Linux (mapped_linux.go); elsewhere it does nothing.
func dropMapped(*bolt.Tx) {}
