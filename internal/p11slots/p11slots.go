// Package p11slots makes the listings of PKCS#11 slots in one process take
// turns. SoftHSM 2.6 adds a token made since the last listing to its slot
// table inside C_GetSlotList, without a lock: two listings at once (two
// tokens opened together, or a token made while another is opened) can
// both add it, and the second aborts the whole process on an assertion in
// SlotManager::insertToken. Every C_GetSlotList of nanokms (package hsm)
// and of its test tools goes through List.
//
// It must never hold its lock across anything but the one listing, nor
// call into a module itself.
package p11slots

import "sync"

// mu is held for each listing, of whichever module: slot listings are
// rare (a token's opening, a recovery, a presence probe), so one lock for
// the process costs nothing.
var mu sync.Mutex

// List returns list(tokenPresent) (a module's C_GetSlotList) with no other
// List of the process under way.
func List(list func(tokenPresent bool) ([]uint, error), tokenPresent bool) ([]uint, error) {
	mu.Lock()
	defer mu.Unlock()
	return list(tokenPresent)
}
