package models

// lruIndex maps keys to dense slot numbers and remembers their order of
// use, so that the least recently used can be evicted in O(1). Slots of
// evicted keys are reused by the next add.
type lruIndex[K comparable] struct {
	slots map[K]int32
	keys  []K
	prev  []int32
	next  []int32
	head  int32 // most recently used, -1 when empty
	tail  int32 // least recently used, -1 when empty
	free  []int32
}

func newLRUIndex[K comparable]() *lruIndex[K] {
	return &lruIndex[K]{slots: make(map[K]int32), head: -1, tail: -1}
}

func (l *lruIndex[K]) len() int { return len(l.slots) }

// get returns k's slot and marks it most recently used.
func (l *lruIndex[K]) get(k K) (int32, bool) {
	i, ok := l.slots[k]
	if ok && l.head != i {
		l.unlink(i)
		l.pushFront(i)
	}
	return i, ok
}

// add inserts k (which must be absent) as most recently used.
func (l *lruIndex[K]) add(k K) int32 {
	var i int32
	if n := len(l.free); n > 0 {
		i = l.free[n-1]
		l.free = l.free[:n-1]
		l.keys[i] = k
	} else {
		i = int32(len(l.keys))
		l.keys = append(l.keys, k)
		l.prev = append(l.prev, -1)
		l.next = append(l.next, -1)
	}
	l.slots[k] = i
	l.pushFront(i)
	return i
}

// evict removes the least recently used key and returns its slot, which
// the next add reuses. It must not be called when empty.
func (l *lruIndex[K]) evict() int32 {
	i := l.tail
	l.unlink(i)
	delete(l.slots, l.keys[i])
	var zero K
	l.keys[i] = zero
	l.free = append(l.free, i)
	return i
}

// order returns the live slots from least to most recently used.
func (l *lruIndex[K]) order() []int32 {
	out := make([]int32, 0, len(l.slots))
	for i := l.tail; i >= 0; i = l.prev[i] {
		out = append(out, i)
	}
	return out
}

func (l *lruIndex[K]) unlink(i int32) {
	p, n := l.prev[i], l.next[i]
	if p >= 0 {
		l.next[p] = n
	} else {
		l.head = n
	}
	if n >= 0 {
		l.prev[n] = p
	} else {
		l.tail = p
	}
	l.prev[i], l.next[i] = -1, -1
}

func (l *lruIndex[K]) pushFront(i int32) {
	l.prev[i], l.next[i] = -1, l.head
	if l.head >= 0 {
		l.prev[l.head] = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}
