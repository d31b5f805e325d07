package bboltstore

import (
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func consentKey(subject, clientID string) []byte {
	return lp(clientID, []byte(subject))
}

// GetConsent implements storage.Consents. An expired consent is returned as
// stored; the caller compares ExpiresAt with its clock.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	var c storage.Consent
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if len(clientID) > maxComposite {
			return storage.ErrNotFound
		}
		return getJSON(bucket(tx, bktConsents), consentKey(subject, clientID), &c)
	})
	if err != nil {
		return storage.Consent{}, err
	}
	return c, nil
}

// PutConsent implements storage.Consents (create or replace).
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	if c.Subject == "" || c.ClientID == "" {
		return errors.New("bboltstore: consent without subject or client")
	}
	if err := checkComposite("client id", c.ClientID); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := putJSON(bucket(tx, bktConsents), consentKey(c.Subject, c.ClientID), c); err != nil {
			return err
		}
		return s.txAudit(ctx, tx, nil, nil)
	})
}

// DeleteConsent implements storage.Consents; ErrNotFound when absent.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktConsents)
		k := consentKey(subject, clientID)
		if len(clientID) > maxComposite || b.Get(k) == nil {
			return storage.ErrNotFound
		}
		return b.Delete(k)
	})
}

// DeleteClientConsents implements storage.Consents.
func (s *Store) DeleteClientConsents(ctx context.Context, clientID string) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bktConsents)
		subjects, err := indexed(b, clientID)
		if err != nil {
			return err
		}
		for _, sub := range subjects {
			if err := b.Delete(lp(clientID, sub)); err != nil {
				return err
			}
		}
		n = len(subjects)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
