package authserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// The resource guard's revocation check (Server.Active) and the cache of its
// answers, one revocation generation of the store at a time.

// Active reports whether a grant may still be used by clientID: it exists, is
// not revoked or expired, belongs to clientID, and the client is not disabled
// or deleted. It implements the resource guard's revocation check.
func (s *Server) Active(ctx context.Context, grantID, clientID string) (bool, error) {
	gen, cacheable := s.store.(storage.RevocationGeneration)
	var g0 uint64
	now := s.cfg.Now()
	if cacheable {
		// Read the generation before the store: a revocation committed
		// after this point changes it, and the answer cached below is then
		// never used.
		g0 = gen.RevocationGeneration()
		if active, ok := s.activeCache.get(g0, grantID, clientID, now); ok {
			return active, nil
		}
	}
	active, until, err := s.active(ctx, grantID, clientID, now)
	if err != nil {
		return false, err
	}
	if cacheable {
		s.activeCache.put(g0, grantID, clientID, active, until)
	}
	return active, nil
}

// active reads the grant and the client. until is how long a positive answer
// may be trusted without a revocation (the grant's end).
func (s *Server) active(ctx context.Context, grantID, clientID string, now time.Time) (bool, time.Time, error) {
	never := time.Time{}
	g, err := s.store.GetGrant(ctx, grantID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, never, nil
	}
	if err != nil {
		return false, never, fmt.Errorf("authserver: active: %w", err)
	}
	if g.Revoked() || g.ClientID != clientID || (!g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt)) {
		return false, never, nil
	}
	until := g.ExpiresAt
	if until.IsZero() {
		until = now.Add(time.Hour)
	}
	c, err := s.store.GetClient(ctx, clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// CIMD clients live in their metadata documents, not necessarily in
		// the store; a deleted owned or DCR client ends its grants.
		return oauth.IsCIMDClientID(clientID), until, nil
	case err != nil:
		return false, never, fmt.Errorf("authserver: active: %w", err)
	}
	return !c.Disabled, until, nil
}

// activeCache remembers Active answers for one revocation generation of the
// store (storage.RevocationGeneration): the guard asks on every request, and
// the answer only changes when something is revoked, disabled or expires.
type activeCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[activeKey]activeEntry
}

type activeEntry struct {
	active bool
	until  time.Time // positive answers expire with the grant; zero: no end
}

const maxActiveCache = 100_000

// activeKey is a cache key: a struct, not grant+"\x00"+client, so that a
// lookup (every guarded request) builds no string.
type activeKey struct{ grant, client string }

func (c *activeCache) get(gen uint64, grantID, clientID string, now time.Time) (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.m == nil {
		return false, false
	}
	e, ok := c.m[activeKey{grantID, clientID}]
	if !ok || (e.active && !now.Before(e.until)) {
		return false, false
	}
	return e.active, true
}

func (c *activeCache) put(gen uint64, grantID, clientID string, active bool, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.m == nil || len(c.m) >= maxActiveCache {
		if gen < c.gen {
			return // a newer generation is already cached
		}
		c.gen, c.m = gen, make(map[activeKey]activeEntry)
	}
	c.m[activeKey{grantID, clientID}] = activeEntry{active: active, until: until}
}
