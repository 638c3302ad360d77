package hsm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A wallet directory keeps sealed wallets beside a token that refuses
// data objects (NSS softokn keeps no CKO_DATA token objects). Each wallet
// is one file, named by the hex of its label with the suffix ".wallet",
// holding the same document as an export (nanokms-wallet-export/1: label,
// wallet id, kind, scheme, master key check value, sealed blob). The
// sealed blob is ciphertext that only the token's master keys open, and
// the token authenticates it at every unseal: the directory needs
// protecting from deletion, not from reading. Still, it must belong to no
// one else: neither it nor its files may be group- or world-writable.
//
// Files are never replaced: a wallet is written to a temporary file,
// synced, and linked to its name (which fails if the name exists), and the
// directory is synced. Entries are opened without following symbolic
// links; names that are not wallet files are ignored, a wallet name that
// is not a regular file is an error.
type walletDir struct {
	path string
}

const (
	walletFileSuffix  = ".wallet"
	maxWalletFileSize = 4096
)

// ErrWalletDir wraps every problem with a wallet directory.
var ErrWalletDir = errors.New("hsm: wallet directory")

func openWalletDir(path string) (*walletDir, error) {
	if !filepath.IsAbs(path) {
		return nil, &ConfigError{Field: "WalletDir", Reason: "must be an absolute path"}
	}
	st, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrWalletDir, path, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w %s: not a directory (symbolic links are not followed)", ErrWalletDir, path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%w %s: writable by other users (mode %04o): chmod go-w", ErrWalletDir, path, st.Mode().Perm())
	}
	return &walletDir{path: path}, nil
}

func walletFileName(label string) string { return hex.EncodeToString([]byte(label)) + walletFileSuffix }

// labelOf returns the label a wallet file name stands for, or false.
func labelOf(name string) (string, bool) {
	h, ok := strings.CutSuffix(name, walletFileSuffix)
	if !ok || h == "" || h != strings.ToLower(h) {
		return "", false
	}
	b, err := hex.DecodeString(h)
	if err != nil || validLabel(string(b)) != nil {
		return "", false
	}
	return string(b), true
}

// read returns the document of the wallet file name, or fs.ErrNotExist.
func (d *walletDir) read(name string) ([]byte, error) {
	f, err := os.OpenFile(filepath.Join(d.path, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fs.ErrNotExist
		}
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%w %s: %s is a symbolic link", ErrWalletDir, d.path, name)
		}
		return nil, fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w %s: %s is not a regular file", ErrWalletDir, d.path, name)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%w %s: %s is writable by other users (mode %04o)", ErrWalletDir, d.path, name, st.Mode().Perm())
	}
	if st.Size() > maxWalletFileSize {
		return nil, fmt.Errorf("%w %s: %s is %d bytes, more than a wallet file holds", ErrWalletDir, d.path, name, st.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxWalletFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	return data, nil
}

// get returns the sealed blob stored under label, or ErrWalletNotFound.
func (d *walletDir) get(label string) (sealedBlob, error) {
	name := walletFileName(label)
	data, err := d.read(name)
	if errors.Is(err, fs.ErrNotExist) {
		return sealedBlob{}, ErrWalletNotFound
	}
	if err != nil {
		return sealedBlob{}, err
	}
	return d.parse(name, label, data)
}

func (d *walletDir) parse(name, label string, data []byte) (sealedBlob, error) {
	e, b, err := parseExport(data)
	if err != nil {
		return sealedBlob{}, fmt.Errorf("%w %s: %s: %w", ErrWalletDir, d.path, name, err)
	}
	if e.Label != label {
		return sealedBlob{}, fmt.Errorf("%w %s: %s holds the wallet %q", ErrWalletDir, d.path, name, e.Label)
	}
	return b, nil
}

// exists reports whether a file for label exists (of any kind).
func (d *walletDir) exists(label string) (bool, error) {
	_, err := os.Lstat(filepath.Join(d.path, walletFileName(label)))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
}

// storedWallet is a wallet as listed.
type storedWallet struct {
	label string
	blob  sealedBlob
}

// list returns every wallet in the directory, in name order.
func (d *walletDir) list() ([]storedWallet, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	var out []storedWallet
	for _, e := range entries {
		label, ok := labelOf(e.Name())
		if !ok {
			continue
		}
		data, err := d.read(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		b, err := d.parse(e.Name(), label, data)
		if err != nil {
			return nil, err
		}
		out = append(out, storedWallet{label: label, blob: b})
	}
	return out, nil
}

// create writes doc as the file of label, never replacing one: ErrWalletExists
// if it exists.
func (d *walletDir) create(label string, doc []byte) error {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	tmp := filepath.Join(d.path, ".tmp-"+hex.EncodeToString(r[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	_, err = f.Write(doc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	defer os.Remove(tmp)
	if err != nil {
		return fmt.Errorf("%w %s: writing a wallet: %w", ErrWalletDir, d.path, err)
	}
	if err := os.Link(tmp, filepath.Join(d.path, walletFileName(label))); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %q in %s", ErrWalletExists, label, d.path)
		}
		return fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("%w %s: %w", ErrWalletDir, d.path, err)
	}
	return syncDir(d.path)
}

func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrWalletDir, path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w %s: syncing: %w", ErrWalletDir, path, err)
	}
	return nil
}
