package node

import (
	"container/list"

	"github.com/nanokms/nanokms/nano"
)

// hashLRU is a bounded set of hashes that forgets the least recently seen
// one when full. It is not safe for concurrent use.
type hashLRU struct {
	max   int
	order *list.List // front: most recent
	items map[nano.Hash]*list.Element
}

func newHashLRU(max int) *hashLRU {
	if max <= 0 {
		max = 1
	}
	return &hashLRU{max: max, order: list.New(), items: make(map[nano.Hash]*list.Element, max)}
}

// add records h and reports whether it was already present (it is then
// made the most recent).
func (l *hashLRU) add(h nano.Hash) bool {
	if e, ok := l.items[h]; ok {
		l.order.MoveToFront(e)
		return true
	}
	l.items[h] = l.order.PushFront(h)
	if l.order.Len() > l.max {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.items, oldest.Value.(nano.Hash))
	}
	return false
}

func (l *hashLRU) contains(h nano.Hash) bool {
	_, ok := l.items[h]
	return ok
}

// remove forgets h and reports whether it was present.
func (l *hashLRU) remove(h nano.Hash) bool {
	e, ok := l.items[h]
	if ok {
		l.order.Remove(e)
		delete(l.items, h)
	}
	return ok
}
