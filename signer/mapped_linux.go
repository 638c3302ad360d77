//go:build linux

package signer

import (
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// dropMapped gives the pages of the state file's memory map that are in
// the process's resident set back to the kernel (madvise MADV_DONTNEED),
// at the end of a scan, within the scan's read transaction.
//
// bbolt reads through a shared, read-only memory map of the file: every
// page a read touches, and the neighbours the kernel maps with it (fault-
// around), stays in the process's resident set until the kernel wants the
// memory back. A listing of every account touches the whole accounts
// bucket (≈ 100 MB at 100,000 accounts), which then counted in the
// signer's RSS although nothing needs it. Dropping the clean pages of a
// shared file mapping loses nothing: they stay in the page cache, the file
// is never written through the map, and the next read maps a page again
// (a minor fault, a microsecond or so: the signing path touches a few
// dozen pages). The whole map is dropped, not only what the scan read,
// because fault-around maps more than was read. It must happen while a
// read transaction is open, which holds bbolt's map lock: otherwise bbolt
// may remap the file, and the range could be other memory (advice on
// anonymous memory would zero it).
func dropMapped(tx *bolt.Tx) {
	start := tx.DB().Info().Data
	size := (uintptr(tx.Size()) + osPageSize - 1) &^ (osPageSize - 1) // within the map, which is a whole number of pages
	if start == 0 || size == 0 {
		return
	}
	// The advice is an optimisation: a page it does not drop is still
	// correct, so its error is of no consequence.
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, size, syscall.MADV_DONTNEED)
}

var osPageSize = uintptr(os.Getpagesize())
