package resourceguard

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache is a bounded cache of verified tokens, keyed by SHA-256 of the
// token's signature, with its header and payload kept to be matched on a
// hit (tokenKey; the signature, what makes the token a credential, is never
// kept). It is sharded to keep lock contention low; each shard is a CLOCK
// list (second-chance LRU): a hit only marks its entry, and eviction gives
// a marked entry at the tail one more pass at the front. A hit that moved its entry to the front touched
// two neighbours and the list head, three cache lines of other entries, on
// every request; with 1,000 tokens those were misses. The size bounds the whole
// cache, not each shard: hashes never spread evenly, and a per-shard share
// of size/16 made a shard holding more than its share evict on every round
// of the same active tokens (1,000 tokens in a cache of 1,000 missed 47 %
// of lookups). An insert first drops its shard's expired entries from the
// least recently used end, so that the shards' shares follow the live
// tokens rather than the ones the cache filled with; when the cache is
// still full, it evicts its shard's least recently used entry (the first
// unmarked one from the tail). Entries live until
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

// cacheEntry holds its token by value, with what a hit reads first: gen,
// until, v.bound, v.used, v.scopes and v.p fill the first 192 bytes, three
// cache lines of an entry that the allocator's 320-byte size class starts
// on a line (TestCacheEntryLayout). A hit on one of 1,000 tokens finds
// those lines cold; an entry pointing to a separate verifiedToken touched
// five or six. v.used is CLOCK's reference bit: hit since the entry last
// moved to the front.
type cacheEntry struct {
	gen        uint64 // the key-set generation it was verified under
	until      int64  // v.cacheUntil in Unix nanoseconds
	v          verifiedToken
	key        [32]byte
	claims     string // the token's header.payload: a hit must match it (tokenKey)
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

// get returns the token cached under key whose header and payload are
// claims. Another token with the same signature (a forgery: the signature
// covers them) is a miss, and the entry stays.
func (c *tokenCache) get(key [32]byte, claims string, now time.Time) *verifiedToken {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil || e.claims != claims {
		return nil
	}
	// An entry of an older generation is never served, even while a
	// concurrent sync is still clearing the shards: the switch of c.gen
	// is atomic, the clearing is not.
	if e.gen != c.gen.Load() || now.UnixNano() >= e.until {
		c.remove(s, e)
		return nil
	}
	if !e.v.used { // written once per pass: a hit leaves the entry's line clean
		e.v.used = true
	}
	// Readers use the entry's token after the lock: it is never written
	// again (a replacement is a new entry).
	return &e.v
}

func (c *tokenCache) put(key [32]byte, claims string, v *verifiedToken, gen uint64, now time.Time) {
	s := c.shard(key)
	e := c.insert(s, key, claims, v, gen, now)
	if e == nil || c.count.Load() <= c.size {
		return
	}
	// Over the bound. Expired entries anywhere go before a live one: the
	// other shards' too, one lock at a time (an insert into one shard
	// would otherwise evict a live token while expired ones still count
	// elsewhere). This runs only on an insert, after a signature check.
	for i := range c.shards {
		if o := &c.shards[i]; o != s {
			o.mu.Lock()
			c.sweep(o, nil, now)
			o.mu.Unlock()
		}
		if c.count.Load() <= c.size {
			return
		}
	}
	// Still over: evict from this shard, never the entry just added (so
	// an insert into an empty shard of a full cache overshoots by one: at
	// most one entry per shard in all).
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.count.Load() > c.size && len(s.m) > 1 && s.m[key] == e {
		c.remove(s, s.victim(e))
	}
}

// insert adds or replaces the entry of key in shard s and drops the
// shard's expired entries; it returns the new entry, or nil when it
// replaced one or gen is no longer current.
func (c *tokenCache) insert(s *cacheShard, key [32]byte, claims string, v *verifiedToken, gen uint64, now time.Time) *cacheEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return nil // verified with a key set that is no longer current
	}
	// claims copied: the request's header string is not pinned by the cache.
	e := &cacheEntry{key: key, claims: strings.Clone(claims), v: *v, gen: gen, until: v.cacheUntil}
	e.v.used = false
	if old := s.m[key]; old != nil {
		// A new entry, not old's token overwritten: a request that got
		// old's token may still be reading it.
		s.unlink(old)
		s.m[key] = e
		s.pushFront(e)
		return nil
	}
	s.m[key] = e
	s.pushFront(e)
	c.count.Add(1)
	c.sweep(s, e, now)
	return e
}

// sweep drops shard s's expired entries from the tail, up to the first
// live one or keep; s.mu must be held. Each entry leaves once, so this is
// constant work per insert on average.
func (c *tokenCache) sweep(s *cacheShard, keep *cacheEntry, now time.Time) {
	t := now.UnixNano()
	for last := s.head.prev; last != &s.head && last != keep && t >= last.until; last = s.head.prev {
		c.remove(s, last)
	}
}

// victim returns the entry to evict: the first unmarked one from the tail,
// moving marked ones to the front unmarked on the way (their second
// chance), never the entry just added (not, which needs a shard of two or
// more). Each entry moves once per mark, so the work per hit is constant
// on average.
func (s *cacheShard) victim(not *cacheEntry) *cacheEntry {
	for e := s.head.prev; ; e = s.head.prev {
		if e == not {
			// Every other entry had its second chance and now stands
			// before the new one, oldest last: it goes.
			return e.prev
		}
		if !e.v.used {
			return e
		}
		e.v.used = false
		s.unlink(e)
		s.pushFront(e)
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
