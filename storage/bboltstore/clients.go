package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// touchInterval is how stale LastUsedAt must be before TouchClient writes.
const touchInterval = time.Hour

func checkClient(c storage.Client) error {
	if c.ID == "" {
		return errors.New("bboltstore: client without id")
	}
	return checkComposite("client id", c.ID)
}

// GetClient implements storage.Clients.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	var c storage.Client
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(bucket(tx, bktClients), []byte(id), &c)
	})
	return c, err
}

// PutClient implements storage.Clients.
func (s *Store) PutClient(ctx context.Context, c storage.Client) error {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	if err := checkClient(c); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(bucket(tx, bktClients), []byte(c.ID), c)
	})
}

// CreateClient implements storage.Clients.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	if err := checkClient(c); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktClients)
		if b.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("bboltstore: client: %w", storage.ErrAlreadyExists)
		}
		return putJSON(b, []byte(c.ID), c)
	})
}

// DeleteClient implements storage.Clients. It removes the client record
// only; the caller revokes its grants and consents.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktClients)
		if b.Get([]byte(id)) == nil {
			return storage.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// ListClients implements storage.Clients, ordered by id.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	var out []storage.Client
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return bucket(tx, bktClients).ForEach(func(_, v []byte) error {
			var c storage.Client
			if err := decode(v, &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// SetClientDisabled implements storage.Clients.
func (s *Store) SetClientDisabled(ctx context.Context, id string, disabled bool, now time.Time) error {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	return s.modifyClient(ctx, id, true, func(c *storage.Client) bool {
		c.Disabled = disabled
		c.UpdatedAt = now
		return true
	})
}

// TouchClient implements storage.Clients. It writes only when LastUsedAt is
// older than an hour (or unset), so the token endpoint rarely pays a second
// write.
func (s *Store) TouchClient(ctx context.Context, id string, now time.Time) error {
	var c storage.Client
	if err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(bucket(tx, bktClients), []byte(id), &c)
	}); err != nil {
		return err
	}
	if !c.LastUsedAt.IsZero() && now.Sub(c.LastUsedAt) < touchInterval {
		return nil
	}
	return s.modifyClient(ctx, id, false, func(c *storage.Client) bool {
		if !c.LastUsedAt.IsZero() && now.Sub(c.LastUsedAt) < touchInterval {
			return false
		}
		c.LastUsedAt = now
		return true
	})
}

// With audited, the storage.TxAudit of ctx is appended in the same
// transaction when the client changed.
func (s *Store) modifyClient(ctx context.Context, id string, audited bool, fn func(*storage.Client) bool) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktClients)
		var c storage.Client
		if err := getJSON(b, []byte(id), &c); err != nil {
			return err
		}
		if !fn(&c) {
			return nil
		}
		if err := putJSON(b, []byte(id), c); err != nil || !audited {
			return err
		}
		return s.txAudit(ctx, tx, nil, nil)
	})
}
