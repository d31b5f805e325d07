package authserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Operator actions on clients and keys (the admin API and the CLI call
// these; they decide nothing themselves).

// SetClientDisabled disables or enables a client and returns it as stored.
// A disabled client is refused at /authorize and /token and its grants stop
// being Active (the guard refuses their tokens). A CIMD client has no stored
// record (it lives in its metadata document): disabling one stores a
// disabled record that lookupClient and Active consult. Enabling a client
// that was never stored, or disabling an unknown non-CIMD id, wraps
// storage.ErrNotFound.
func (s *Server) SetClientDisabled(ctx context.Context, id string, disabled bool) (storage.Client, error) {
	now := s.cfg.Now()
	err := s.store.SetClientDisabled(ctx, id, disabled, now)
	if errors.Is(err, storage.ErrNotFound) && disabled && operatorCIMDClientID(id) {
		err = s.store.CreateClient(ctx, storage.Client{ID: id, Kind: storage.ClientCIMD, Name: id,
			TokenEndpointAuthMethod: oauth.AuthMethodNone, Disabled: true, CreatedAt: now, UpdatedAt: now})
		if errors.Is(err, storage.ErrAlreadyExists) {
			err = s.store.SetClientDisabled(ctx, id, true, now)
		}
	}
	if err != nil {
		return storage.Client{}, fmt.Errorf("authserver: set client disabled: %w", err)
	}
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return storage.Client{}, fmt.Errorf("authserver: get client: %w", err)
	}
	return c, nil
}

// RevokeClientGrants is RevokeClient for an operator naming a client by id:
// an id that is neither stored nor a CIMD client id (which may have grants
// without a stored record) wraps storage.ErrNotFound and revokes nothing.
func (s *Server) RevokeClientGrants(ctx context.Context, id string) (int, error) {
	if _, err := s.store.GetClient(ctx, id); err != nil && !(errors.Is(err, storage.ErrNotFound) && operatorCIMDClientID(id)) {
		return 0, fmt.Errorf("authserver: revoke client: %w", err)
	}
	return s.RevokeClient(ctx, id)
}

// ActiveGrants counts the grants of a client (clientID) or of a user
// (subject) that are neither revoked nor expired.
func (s *Server) ActiveGrants(ctx context.Context, clientID, subject string) (int, error) {
	gs, err := s.store.ListGrants(ctx, clientID, subject)
	if err != nil {
		return 0, fmt.Errorf("authserver: list grants: %w", err)
	}
	return countActiveGrants(gs, s.cfg.Now()), nil
}

func countActiveGrants(gs []storage.Grant, now time.Time) int {
	n := 0
	for _, g := range gs {
		if !g.Revoked() && (g.ExpiresAt.IsZero() || now.Before(g.ExpiresAt)) {
			n++
		}
	}
	return n
}

// newestUnretired returns the index in ks of the newest unretired key (the
// greater kid on equal creation times; it may still be pre-published, see
// ActiveSigningKey for the one that signs); -1 when every key is retired.
func newestUnretired(ks []storage.SigningKey) int {
	active := -1
	for i, k := range ks {
		if k.RetiredAt.IsZero() && (active < 0 || k.CreatedAt.After(ks[active].CreatedAt) ||
			(k.CreatedAt.Equal(ks[active].CreatedAt) && k.ID > ks[active].ID)) {
			active = i
		}
	}
	return active
}

// operatorCIMDClientID reports whether an operator-given id is a CIMD
// client id (oauth.IsCIMDClientID) that is a valid Client ID Metadata
// Document URL (cimd.ValidClientIDURL): only such a client may be disabled
// or revoked without a stored record.
func operatorCIMDClientID(id string) bool {
	return oauth.IsCIMDClientID(id) && cimd.ValidClientIDURL(id) == nil
}
