package resourceguard

import (
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache is a bounded cache of verified tokens, keyed by SHA-256 of the
// token (the token itself is never kept). It is sharded to keep lock
// contention low; each shard is an LRU list. The size bounds the whole
// cache, not each shard: hashes never spread evenly, and a per-shard share
// of size/16 made a shard holding more than its share evict on every round
// of the same active tokens (1,000 tokens in a cache of 1,000 missed 47 %
// of lookups). An insert first drops its shard's expired entries from the
// least recently used end, so that the shards' shares follow the live
// tokens rather than the ones the cache filled with; when the cache is
// still full, it evicts its shard's least recently used entry. Entries live until
// min(token expiry, CacheMaxTTL after verification). The whole cache is
// flushed when the key source's generation changes, and an entry verified
// under an older generation is never inserted. Failures are never cached.
type tokenCache struct {
	gen    atomic.Uint64
	size   int64
	count  atomic.Int64 // entries in all shards
	shards []cacheShard
}

type cacheShard struct {
	mu   sync.Mutex
	m    map[[32]byte]*cacheEntry
	head cacheEntry // sentinel of a circular doubly linked list, most recent first
}

type cacheEntry struct {
	gen        uint64 // the key-set generation it was verified under
	key        [32]byte
	v          *verifiedToken
	prev, next *cacheEntry
}

func newTokenCache(size int, gen uint64) *tokenCache {
	n := 16
	if size < 64 {
		n = 1
	}
	c := &tokenCache{size: int64(size), shards: make([]cacheShard, n)}
	c.gen.Store(gen)
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[[32]byte]*cacheEntry)
		s.head.prev, s.head.next = &s.head, &s.head
	}
	return c
}

func (c *tokenCache) shard(key [32]byte) *cacheShard {
	return &c.shards[int(key[0])%len(c.shards)]
}

// sync flushes the cache when the key set changed.
//
// Generations only grow. A caller that read the key source's generation
// before a change may sync with the older value after another caller synced
// the newer one: moving back would let a token verified with a removed key
// be cached (and served) under the old generation again.
func (c *tokenCache) sync(gen uint64) {
	for {
		old := c.gen.Load()
		if gen <= old {
			return
		}
		if c.gen.CompareAndSwap(old, gen) {
			break
		}
	}
	// The generation is stored before the shards are cleared: a put that
	// checked the old generation under a shard lock finished before the
	// clear takes that lock; a later put sees the new generation.
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		c.count.Add(-int64(len(s.m)))
		clear(s.m)
		s.head.prev, s.head.next = &s.head, &s.head
		s.mu.Unlock()
	}
}

func (c *tokenCache) get(key [32]byte, now time.Time) *verifiedToken {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil {
		return nil
	}
	// An entry of an older generation is never served, even while a
	// concurrent sync is still clearing the shards: the switch of c.gen
	// is atomic, the clearing is not.
	if e.gen != c.gen.Load() || !now.Before(e.v.cacheUntil) {
		c.remove(s, e)
		return nil
	}
	s.unlink(e)
	s.pushFront(e)
	return e.v
}

func (c *tokenCache) put(key [32]byte, v *verifiedToken, gen uint64, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return // verified with a key set that is no longer current
	}
	if e := s.m[key]; e != nil {
		e.v, e.gen = v, gen
		s.unlink(e)
		s.pushFront(e)
		return
	}
	e := &cacheEntry{key: key, v: v, gen: gen}
	s.m[key] = e
	s.pushFront(e)
	c.count.Add(1)
	// Expired entries leave from the tail; each leaves once, so this is
	// constant work per insert on average.
	for last := s.head.prev; last != e && !now.Before(last.v.cacheUntil); last = s.head.prev {
		c.remove(s, last)
	}
	// Still over the bound: evict from this shard, never the entry just
	// added (so an insert into an empty shard of a full cache overshoots
	// by one: at most one entry per shard in all).
	if c.count.Load() > c.size && len(s.m) > 1 {
		c.remove(s, s.head.prev)
	}
}

// len reports the number of entries (for tests).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// remove drops an entry of shard s; s.mu must be held.
func (c *tokenCache) remove(s *cacheShard, e *cacheEntry) {
	s.unlink(e)
	delete(s.m, e.key)
	c.count.Add(-1)
}

func (s *cacheShard) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}
