package storage

import (
	"slices"
	"time"
)

// Widen is the rule WidenGrant applies in every backend: g with scopes and
// tools added (kept in order, new ones appended; tools sorted), or
// ErrNotFound when g has expired at now, ErrGrantRevoked when it is revoked.
// It never removes anything.
func Widen(g Grant, scopes, tools []string, now time.Time) (Grant, error) {
	if g.Revoked() {
		return g, ErrGrantRevoked
	}
	if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
		return g, ErrNotFound
	}
	g.Scopes = slices.Clone(g.Scopes)
	for _, s := range scopes {
		if !slices.Contains(g.Scopes, s) {
			g.Scopes = append(g.Scopes, s)
		}
	}
	g.Tools = slices.Clone(g.Tools)
	for _, t := range tools {
		if !slices.Contains(g.Tools, t) {
			g.Tools = append(g.Tools, t)
		}
	}
	slices.Sort(g.Tools)
	if len(g.Tools) == 0 {
		g.Tools = nil
	}
	return g, nil
}
