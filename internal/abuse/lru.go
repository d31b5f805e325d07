package abuse

import "container/list"

// DefaultMaxKeys bounds a table when its owner sets no size.
const DefaultMaxKeys = 10_000

// LRU is a map bounded to Max entries: adding to a full table evicts the
// least recently used entry. It is not safe for concurrent use (its owner
// holds a lock).
type LRU[V any] struct {
	max int
	ll  *list.List // front: most recently used
	m   map[string]*list.Element
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
	for c.ll.Len() >= c.max {
		c.removeElement(c.ll.Back())
		c.Evicted++
	}
	v := mk()
	c.m[key] = c.ll.PushFront(&lruEntry[V]{key: key, val: v})
	return v
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
