package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// DPoPConfig turns on DPoP (RFC 9449) at the token endpoint: a client that
// sends a DPoP proof gets tokens bound to its key (access tokens with
// cnf.jkt and token_type DPoP; a public client's refresh tokens too), and
// the guards of this config accept such tokens with the DPoP scheme.
//
// Caddyfile (inside mcp_auth):
//
//	dpop {
//		algorithms <alg...>   # default ES256 ES384 EdDSA PS256 RS256
//		nonce                 # require a server nonce (DPoP-Nonce) at /token
//	}
type DPoPConfig struct {
	// Algorithms are the proof algorithms accepted and advertised
	// (dpop_signing_alg_values_supported). Asymmetric only. Default:
	// ES256, ES384, EdDSA, PS256, RS256.
	Algorithms []string `json:"algorithms,omitempty"`
	// Nonce requires every proof at /token to carry a fresh server nonce
	// (RFC 9449 §8): a proof without one is answered use_dpop_nonce with a
	// DPoP-Nonce header. Nonces are keyed per process: behind a load
	// balancer without affinity a client may need one more round trip.
	Nonce bool `json:"nonce,omitempty"`
}

func (c *DPoPConfig) validate() error {
	if c == nil {
		return nil
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(dpop.Algs, a) {
			return fmt.Errorf("mcp_auth: dpop: algorithm %q is not accepted (one of %v)", a, dpop.Algs)
		}
	}
	return nil
}

func (c *DPoPConfig) serverConfig() *authserver.DPoPConfig {
	if c == nil {
		return nil
	}
	return &authserver.DPoPConfig{Algorithms: c.Algorithms, Nonce: c.Nonce}
}

// storeReplays records DPoP proof jtis in the app's store, so that a proof
// used at one instance's guard is refused at every other.
type storeReplays struct{ r storage.Replays }

func (s storeReplays) FirstUse(ctx context.Context, key []byte, until, now time.Time) (bool, error) {
	err := s.r.UseOnce(ctx, key, until, now)
	if errors.Is(err, storage.ErrReplayed) {
		return false, nil
	}
	return err == nil, err
}

// proofReplays is where a guard records proof jtis. On PostgreSQL, in the
// shared store: every instance refuses a proof any instance accepted. On
// bbolt, in this process's memory: the bbolt file is held by this one
// process, so the record is as complete as the store's, and a write
// transaction (an fsync, about 4 ms here) per guarded request would cap the
// guard at a few hundred requests per second. What it loses is a restart:
// a proof at most max-age old may be used once more after one.
func proofReplays(app *App) resourceguard.ProofReplays {
	if app != nil && app.store != nil && app.Storage.Backend == "postgres" {
		return storeReplays{app.store}
	}
	return nil // resourceguard's in-memory record
}

// guardDPoP is the guard's DPoP setup: on when the guard's own mcp_auth app
// has dpop (with its algorithms) or require_dpop is set.
func (g *Guard) guardDPoP(app *App) *resourceguard.DPoPConfig {
	var c *resourceguard.DPoPConfig
	if app != nil && app.DPoP != nil {
		c = &resourceguard.DPoPConfig{Algorithms: app.DPoP.Algorithms}
	}
	if g.RequireDPoP {
		if c == nil {
			c = &resourceguard.DPoPConfig{}
		}
		c.Required = true
	}
	if c != nil {
		c.Replays = proofReplays(app)
	}
	return c
}
