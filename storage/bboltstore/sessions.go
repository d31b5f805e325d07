package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// CreateSession implements storage.Sessions. ErrAlreadyExists when the
// hash is taken.
func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	if err := checkHash("session", sess.Hash); err != nil {
		return err
	}
	if sess.AccountID == "" {
		return errors.New("bboltstore: session without account")
	}
	if sess.ExpiresAt.IsZero() {
		return errors.New("bboltstore: session without expiry")
	}
	if err := checkComposite("account id", sess.AccountID); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktSessions)
		if b.Get(sess.Hash) != nil {
			return fmt.Errorf("bboltstore: session: %w", storage.ErrAlreadyExists)
		}
		if err := putJSON(b, sess.Hash, sess); err != nil {
			return err
		}
		if err := bucket(tx, bktSessionsByAcct).Put(lp(sess.AccountID, sess.Hash), nil); err != nil {
			return err
		}
		return s.txAudit(ctx, tx, nil, nil)
	})
}

// GetSession implements storage.Sessions. An expired session is returned as
// stored; the caller applies its idle and absolute timeouts.
func (s *Store) GetSession(ctx context.Context, hash []byte) (storage.Session, error) {
	var sess storage.Session
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(bucket(tx, bktSessions), hash, &sess)
	})
	if err != nil {
		return storage.Session{}, err
	}
	sess.Hash = clone(hash)
	return sess, nil
}

// TouchSession implements storage.Sessions; LastSeenAt never moves back.
func (s *Store) TouchSession(ctx context.Context, hash []byte, now time.Time) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktSessions)
		var sess storage.Session
		if err := getJSON(b, hash, &sess); err != nil {
			return err
		}
		if !now.After(sess.LastSeenAt) {
			return nil
		}
		sess.LastSeenAt = now
		return putJSON(b, hash, sess)
	})
}

// DeleteSession implements storage.Sessions; ErrNotFound when absent.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktSessions)
		var sess storage.Session
		if err := getJSON(b, hash, &sess); err != nil {
			return err
		}
		return deleteSession(tx, hash, sess.AccountID)
	})
}

func deleteSession(tx *bolt.Tx, hash []byte, accountID string) error {
	if err := bucket(tx, bktSessionsByAcct).Delete(lp(accountID, hash)); err != nil {
		return err
	}
	return bucket(tx, bktSessions).Delete(hash)
}

// DeleteAccountSessions implements storage.Sessions.
func (s *Store) DeleteAccountSessions(ctx context.Context, accountID string) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		hashes, err := indexed(bucket(tx, bktSessionsByAcct), accountID)
		if err != nil {
			return err
		}
		for _, h := range hashes {
			if err := deleteSession(tx, h, accountID); err != nil {
				return err
			}
		}
		n = len(hashes)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
