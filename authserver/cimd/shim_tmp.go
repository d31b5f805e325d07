package cimd

import (
	"context"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// TEMPORARY shim: today's behaviour under the new names, to run the new tests.
const (
	DefaultPerRequesterBurst    = 5
	DefaultPerDomainConcurrency = 4
	DefaultMaxStale             = time.Hour
	DefaultNegativeTTL          = 30 * time.Second
	DefaultUntrustedTimeout     = 3 * time.Second
)

func (r *Resolver) ResolveFrom(ctx context.Context, id, _ string) (storage.Client, error) {
	return r.Resolve(ctx, id)
}
