package abuse

import "container/list"

// DefaultMaxKeys bounds a table when its owner sets no size.
const DefaultMaxKeys = 10_000

// LRU is a map bounded to Max entries: adding to a full table evicts the
// least recently used entry. It is not safe for concurrent use (its owner
// holds a lock).
type LRU[V any] struct {
	max   int
	ll    *list.List // front: most recently used
	m     map[string]*list.Element
	spare func(V) bool
	// Evicted counts entries dropped to make room (tests, metrics).
	Evicted int
}

type lruEntry[V any] struct {
	key string
	val V
}

// NewLRU returns a table of at most max entries (DefaultMaxKeys when max <= 0).
func NewLRU[V any](max int) *LRU[V] {
	if max <= 0 {
		max = DefaultMaxKeys
	}
	return &LRU[V]{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// spareScan bounds how many entries an eviction looks at for one that is
// not spared, so a table full of busy entries costs O(1) per insert.
const spareScan = 256

// NewSparingLRU is NewLRU whose evictions pass over entries for which spare
// is true (say, a budget with fetches in flight) while an idle one can go
// among the spareScan least recently used; failing that, the least recently
// used goes anyway, so a full table never refuses an insert.
func NewSparingLRU[V any](max int, spare func(V) bool) *LRU[V] {
	c := NewLRU[V](max)
	c.spare = spare
	return c
}

// Get returns key's value and marks it used.
func (c *LRU[V]) Get(key string) (V, bool) {
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// Peek returns key's value without marking it used.
func (c *LRU[V]) Peek(key string) (V, bool) {
	if e, ok := c.m[key]; ok {
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns key's value, adding mk() first when it is missing
// (evicting the least recently used entry of a full table). It marks the
// entry used.
func (c *LRU[V]) GetOrAdd(key string, mk func() V) V {
	if v, ok := c.Get(key); ok {
		return v
	}
	v := mk()
	c.insert(key, v)
	return v
}

// Put sets key's value (inserting it, evicting when full) and marks it used.
func (c *LRU[V]) Put(key string, v V) {
	if e, ok := c.m[key]; ok {
		e.Value.(*lruEntry[V]).val = v
		c.ll.MoveToFront(e)
		return
	}
	c.insert(key, v)
}

func (c *LRU[V]) insert(key string, v V) {
	for c.ll.Len() >= c.max {
		c.removeElement(c.victim())
		c.Evicted++
	}
	c.m[key] = c.ll.PushFront(&lruEntry[V]{key: key, val: v})
}

// victim is the entry to evict: the least recently used one that is not
// spared, looking at most spareScan entries back, else the least recently
// used.
func (c *LRU[V]) victim() *list.Element {
	if c.spare != nil {
		for e, n := c.ll.Back(), 0; e != nil && n < spareScan; e, n = e.Prev(), n+1 {
			if !c.spare(e.Value.(*lruEntry[V]).val) {
				return e
			}
		}
	}
	return c.ll.Back()
}

// Delete removes key.
func (c *LRU[V]) Delete(key string) {
	if e, ok := c.m[key]; ok {
		c.removeElement(e)
	}
}

// Len is the number of entries.
func (c *LRU[V]) Len() int { return c.ll.Len() }

// DeleteOldestWhile removes entries from the least recently used end while
// drop says so, and stops at the first it keeps (idle sweeps).
func (c *LRU[V]) DeleteOldestWhile(drop func(key string, v V) bool) {
	for e := c.ll.Back(); e != nil; {
		ent := e.Value.(*lruEntry[V])
		if !drop(ent.key, ent.val) {
			return
		}
		prev := e.Prev()
		c.removeElement(e)
		e = prev
	}
}

func (c *LRU[V]) removeElement(e *list.Element) {
	c.ll.Remove(e)
	delete(c.m, e.Value.(*lruEntry[V]).key)
}
