package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// PutTicket implements storage.Tickets. ErrAlreadyExists when the hash is
// taken.
func (s *Store) PutTicket(ctx context.Context, t storage.Ticket) error {
	if err := checkHash("ticket", t.Hash); err != nil {
		return err
	}
	if t.Kind == "" {
		return errors.New("bboltstore: ticket without kind")
	}
	if t.ExpiresAt.IsZero() {
		return errors.New("bboltstore: ticket without expiry")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktTickets)
		if b.Get(t.Hash) != nil {
			return fmt.Errorf("bboltstore: ticket: %w", storage.ErrAlreadyExists)
		}
		return putJSON(b, t.Hash, t)
	})
}

// TakeTicket implements storage.Tickets. A refused take (other kind,
// expired) leaves the ticket where it is; DeleteExpired removes it later.
func (s *Store) TakeTicket(ctx context.Context, kind string, hash []byte, now time.Time) (storage.Ticket, error) {
	var t storage.Ticket
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktTickets)
		if err := getJSON(b, hash, &t); err != nil {
			return err
		}
		if t.Kind != kind || expired(t.ExpiresAt, now) {
			return storage.ErrNotFound
		}
		return b.Delete(hash)
	})
	if err != nil {
		return storage.Ticket{}, err
	}
	t.Hash = clone(hash)
	return t, nil
}
