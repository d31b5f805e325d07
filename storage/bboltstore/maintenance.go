package bboltstore

import (
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// DeleteExpired implements storage.Maintenance in one write transaction:
// codes, sessions, tickets, used assertion identifiers and email verifications whose ExpiresAt has passed, grants whose
// absolute ExpiresAt has passed (with every refresh token hash of their
// family, revoked or not), consents with a non-zero ExpiresAt that has
// passed, and audit events older than auditBefore (zero keeps them all).
// It returns how many records it removed.
func (s *Store) DeleteExpired(ctx context.Context, now, auditBefore time.Time) (int, error) {
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		// Simple buckets: the record's ExpiresAt decides.
		type expiring struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		for _, name := range [][]byte{bktCodes, bktTickets, bktConsents, bktReplays} {
			b := bucket(tx, name)
			var dead [][]byte
			if err := b.ForEach(func(k, v []byte) error {
				var r expiring
				if err := decode(v, &r); err != nil {
					return err
				}
				if expired(r.ExpiresAt, now) {
					dead = append(dead, clone(k))
				}
				return nil
			}); err != nil {
				return err
			}
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n += len(dead)
		}

		// Sessions, with their account index.
		var deadSessions []storage.Session
		if err := bucket(tx, bktSessions).ForEach(func(k, v []byte) error {
			var sess storage.Session
			if err := decode(v, &sess); err != nil {
				return err
			}
			if expired(sess.ExpiresAt, now) {
				sess.Hash = clone(k)
				deadSessions = append(deadSessions, sess)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, sess := range deadSessions {
			if err := deleteSession(tx, sess.Hash, sess.AccountID); err != nil {
				return err
			}
		}
		n += len(deadSessions)

		// Email verifications, with their account index.
		var deadVerifications []storage.EmailVerification
		if err := bucket(tx, bktVerifications).ForEach(func(k, v []byte) error {
			var ev storage.EmailVerification
			if err := decode(v, &ev); err != nil {
				return err
			}
			if expired(ev.ExpiresAt, now) {
				ev.Hash = clone(k)
				deadVerifications = append(deadVerifications, ev)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, ev := range deadVerifications {
			if err := deleteVerification(tx, ev.Hash, ev.AccountID); err != nil {
				return err
			}
		}
		n += len(deadVerifications)

		// Grants, with their indexes and refresh token family.
		var deadGrants []storage.Grant
		if err := bucket(tx, bktGrants).ForEach(func(_, v []byte) error {
			var g storage.Grant
			if err := decode(v, &g); err != nil {
				return err
			}
			if expired(g.ExpiresAt, now) {
				deadGrants = append(deadGrants, g)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, g := range deadGrants {
			if err := deleteGrant(tx, g); err != nil {
				return err
			}
		}
		n += len(deadGrants)

		// Audit: keys are ordered by time.
		if !auditBefore.IsZero() {
			b := bucket(tx, bktAudit)
			bound := auditNanos(auditBefore)
			var dead [][]byte
			c := b.Cursor()
			for k, _ := c.First(); len(k) == 16 && binary.BigEndian.Uint64(k[:8]) < bound; k, _ = c.Next() {
				dead = append(dead, clone(k))
			}
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n += len(dead)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
