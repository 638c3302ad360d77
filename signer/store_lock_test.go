package signer

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestStateFileNotReadableBesideTheSigner records why the audit chain of
// a running signer's bbolt file is checked through the signer (audit
// verify --config) and not by opening the file: the signer's open holds
// bbolt's exclusive flock, and a read-only open asks a shared one, which
// waits for it. Once the signer closes the file, the same read-only open
// succeeds.
func TestStateFileNotReadableBesideTheSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signer.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ro := &bolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond}
	if db, err := bolt.Open(path, 0o600, ro); !errors.Is(err, bolt.ErrTimeout) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("a read-only open beside the signer's: %v, want bbolt's lock timeout", err)
	}
	if _, err := OpenStore(path); err == nil {
		t.Fatal("a second read-write open beside the signer's succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, ro)
	if err != nil {
		t.Fatalf("a read-only open of the closed file: %v", err)
	}
	db.Close()
}
