package bboltstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

var _ storage.Snapshotter = (*Store)(nil)

// Export implements storage.Snapshotter from one read transaction: writers
// carry on meanwhile and the records emitted are one consistent snapshot.
// Each kind comes in key order; audit events oldest first. emit runs inside
// the read transaction and must not call this store.
func (s *Store) Export(ctx context.Context, emit func(storage.Record) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		each := func(name []byte, fn func(k, v []byte) error) error {
			return bucket(tx, name).ForEach(func(k, v []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				return fn(k, v)
			})
		}
		steps := []struct {
			bucket []byte
			fn     func(k, v []byte) error
		}{
			{bktClients, func(_, v []byte) error {
				var c storage.Client
				if err := decode(v, &c); err != nil {
					return err
				}
				return emit(storage.Record{Kind: storage.KindClient, Client: &c})
			}},
			{bktKeys, func(_, v []byte) error {
				var k storage.SigningKey
				if err := decode(v, &k); err != nil {
					return err
				}
				return emit(storage.Record{Kind: storage.KindSigningKey, Key: &k})
			}},
			{bktAccounts, func(_, v []byte) error {
				var a storage.Account
				if err := decode(v, &a); err != nil {
					return err
				}
				return emit(storage.Record{Kind: storage.KindAccount, Account: &a})
			}},
			{bktIdentities, func(k, v []byte) error {
				provider, subject, err := splitLP(k)
				if err != nil {
					return fmt.Errorf("bboltstore: export identity: %w", err)
				}
				return emit(storage.Record{Kind: storage.KindIdentity, Identity: &storage.IdentityLink{
					Provider: provider, Subject: string(subject), AccountID: string(v),
				}})
			}},
			{bktConsents, func(_, v []byte) error {
				var c storage.Consent
				if err := decode(v, &c); err != nil {
					return err
				}
				return emit(storage.Record{Kind: storage.KindConsent, Consent: &c})
			}},
			{bktGrants, func(k, v []byte) error {
				var g storage.Grant
				if err := decode(v, &g); err != nil {
					return err
				}
				var hashes [][]byte
				if err := forPrefix(bucket(tx, bktRefreshByGrant), lp(string(k)), func(h, _ []byte) error {
					hashes = append(hashes, clone(h))
					return nil
				}); err != nil {
					return err
				}
				return emit(storage.Record{Kind: storage.KindGrant, Grant: &g, RefreshHashes: hashes})
			}},
			{bktCodes, func(k, v []byte) error {
				var c storage.AuthCode
				if err := decode(v, &c); err != nil {
					return err
				}
				c.Hash = clone(k)
				return emit(storage.Record{Kind: storage.KindCode, Code: &c})
			}},
			{bktSessions, func(k, v []byte) error {
				var ss storage.Session
				if err := decode(v, &ss); err != nil {
					return err
				}
				ss.Hash = clone(k)
				return emit(storage.Record{Kind: storage.KindSession, Session: &ss})
			}},
			{bktTickets, func(k, v []byte) error {
				var t storage.Ticket
				if err := decode(v, &t); err != nil {
					return err
				}
				t.Hash = clone(k)
				return emit(storage.Record{Kind: storage.KindTicket, Ticket: &t})
			}},
			{bktAudit, func(_, v []byte) error { // keys are time-ordered: oldest first
				var e storage.AuditEvent
				if err := decode(v, &e); err != nil {
					return err
				}
				return emit(storage.Record{Kind: storage.KindAudit, Audit: &e})
			}},
		}
		for _, st := range steps {
			if err := each(st.bucket, st.fn); err != nil {
				return err
			}
		}
		return nil
	})
}

// splitLP splits a composite key built by lp(first, rest).
func splitLP(k []byte) (string, []byte, error) {
	if len(k) < 2 {
		return "", nil, errors.New("malformed composite key")
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) < 2+n {
		return "", nil, errors.New("malformed composite key")
	}
	return string(k[2 : 2+n]), k[2+n:], nil
}

// Import implements storage.Snapshotter in one write transaction: the
// destination must be empty (storage.ErrNotEmpty otherwise) and any error
// rolls everything back, so a failed import leaves an empty store and can
// be run again. The transaction holds every written page in memory until
// it commits; bbolt stores are small enough for that. Identities must come
// after their accounts (Export's order).
func (s *Store) Import(ctx context.Context, next func() (storage.Record, error)) error {
	// Grants and clients appear: cached "inactive" answers are stale.
	defer s.revGen.Add(1) // after the commit: see RevocationGeneration
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := checkEmpty(tx); err != nil {
			return err
		}
		var seq uint64
		nextSeq := func() uint64 { seq++; return seq }
		for n := 0; ; n++ {
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			r, err := next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := importRecord(tx, r, nextSeq); err != nil {
				return fmt.Errorf("bboltstore: import %s record %d: %w", r.Kind, n+1, err)
			}
		}
	})
}

var _ storage.BatchImporter = (*Store)(nil)

// keyCopyIncomplete, in the meta bucket, marks a file that BeginImport
// started filling and FinishImport has not finished (its value: the start
// time, RFC 3339). Open refuses such a file.
var keyCopyIncomplete = []byte("copy_incomplete")

// checkEmpty fails with storage.ErrNotEmpty when the file holds a record
// or the mark of an unfinished copy.
func checkEmpty(tx *bolt.Tx) error {
	if meta := tx.Bucket(bktMeta); meta != nil && meta.Get(keyCopyIncomplete) != nil {
		return fmt.Errorf("bboltstore: import: the file holds an unfinished copy: %w", storage.ErrNotEmpty)
	}
	for _, name := range v1Buckets {
		if k, _ := bucket(tx, name).Cursor().First(); k != nil {
			return fmt.Errorf("bboltstore: import: bucket %s holds records: %w", name, storage.ErrNotEmpty)
		}
	}
	return nil
}

// copyIncomplete reports the mark of an unfinished copy.
func copyIncomplete(tx *bolt.Tx) bool {
	meta := tx.Bucket(bktMeta)
	return meta != nil && meta.Get(keyCopyIncomplete) != nil
}

// BeginImport implements storage.BatchImporter: in one write transaction it
// checks the file is empty and marks it incomplete.
func (s *Store) BeginImport(ctx context.Context) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := checkEmpty(tx); err != nil {
			return err
		}
		return tx.Bucket(bktMeta).Put(keyCopyIncomplete, []byte(s.now().UTC().Format(time.RFC3339)))
	})
}

// ImportBatch implements storage.BatchImporter: recs in one write
// transaction (the only pages it holds in memory), audit keys from the
// store's sequence so that the order of equal times holds across batches.
func (s *Store) ImportBatch(ctx context.Context, recs []storage.Record) error {
	defer s.revGen.Add(1) // grants and clients appear (after the commit)
	nextSeq := func() uint64 { return s.seq.Add(1) }
	return s.update(ctx, func(tx *bolt.Tx) error {
		if !copyIncomplete(tx) {
			return errors.New("bboltstore: import batch: no copy in progress (BeginImport first)")
		}
		for i, r := range recs {
			if err := importRecord(tx, r, nextSeq); err != nil {
				return fmt.Errorf("bboltstore: import %s record %d of the batch: %w", r.Kind, i+1, err)
			}
		}
		return nil
	})
}

// FinishImport implements storage.BatchImporter: it clears the mark.
func (s *Store) FinishImport(ctx context.Context) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if !copyIncomplete(tx) {
			return errors.New("bboltstore: finish import: no copy in progress")
		}
		return tx.Bucket(bktMeta).Delete(keyCopyIncomplete)
	})
}

// CheckComplete implements storage.BatchImporter.
func (s *Store) CheckComplete(ctx context.Context) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		if copyIncomplete(tx) {
			return storage.ErrIncompleteCopy
		}
		return nil
	})
}

// putNew writes v under key unless the key is taken.
func putNew(b *bolt.Bucket, key []byte, v any) error {
	if b.Get(key) != nil {
		return storage.ErrAlreadyExists
	}
	return putJSON(b, key, v)
}

func importRecord(tx *bolt.Tx, r storage.Record, nextSeq func() uint64) error {
	if err := r.Validate(); err != nil {
		return err
	}
	switch r.Kind {
	case storage.KindClient:
		if err := checkClient(*r.Client); err != nil {
			return err
		}
		return putNew(bucket(tx, bktClients), []byte(r.Client.ID), r.Client)
	case storage.KindSigningKey:
		if r.Key.ID == "" {
			return errors.New("signing key without id")
		}
		return putNew(bucket(tx, bktKeys), []byte(r.Key.ID), r.Key)
	case storage.KindAccount:
		a := r.Account
		if err := checkAccount(*a); err != nil {
			return err
		}
		if a.Email != "" {
			byEmail := bucket(tx, bktAccountsByEmail)
			if byEmail.Get(emailKey(a.Email)) != nil {
				return fmt.Errorf("account email: %w", storage.ErrAlreadyExists)
			}
			if err := byEmail.Put(emailKey(a.Email), []byte(a.ID)); err != nil {
				return err
			}
		}
		return putNew(bucket(tx, bktAccounts), []byte(a.ID), a)
	case storage.KindIdentity:
		id := r.Identity
		if id.Provider == "" || id.Subject == "" {
			return errors.New("identity without provider or subject")
		}
		if err := checkComposite("provider", id.Provider); err != nil {
			return err
		}
		if bucket(tx, bktAccounts).Get([]byte(id.AccountID)) == nil {
			return fmt.Errorf("identity of unknown account: %w", storage.ErrNotFound)
		}
		b := bucket(tx, bktIdentities)
		k := lp(id.Provider, []byte(id.Subject))
		if b.Get(k) != nil {
			return storage.ErrAlreadyExists
		}
		return b.Put(k, []byte(id.AccountID))
	case storage.KindConsent:
		c := r.Consent
		if c.Subject == "" || c.ClientID == "" {
			return errors.New("consent without subject or client")
		}
		if err := checkComposite("client id", c.ClientID); err != nil {
			return err
		}
		return putNew(bucket(tx, bktConsents), consentKey(c.Subject, c.ClientID), c)
	case storage.KindGrant:
		return importGrant(tx, *r.Grant, r.RefreshHashes)
	case storage.KindCode:
		if err := checkHash("code", r.Code.Hash); err != nil {
			return err
		}
		return putNew(bucket(tx, bktCodes), r.Code.Hash, r.Code)
	case storage.KindSession:
		ss := r.Session
		if err := checkHash("session", ss.Hash); err != nil {
			return err
		}
		if ss.AccountID == "" {
			return errors.New("session without account")
		}
		if err := checkComposite("account id", ss.AccountID); err != nil {
			return err
		}
		if err := putNew(bucket(tx, bktSessions), ss.Hash, ss); err != nil {
			return err
		}
		return bucket(tx, bktSessionsByAcct).Put(lp(ss.AccountID, ss.Hash), nil)
	case storage.KindTicket:
		if err := checkHash("ticket", r.Ticket.Hash); err != nil {
			return err
		}
		if r.Ticket.Kind == "" {
			return errors.New("ticket without kind")
		}
		return putNew(bucket(tx, bktTickets), r.Ticket.Hash, r.Ticket)
	case storage.KindAudit:
		// A fresh key per event, in arrival order: events come oldest
		// first, so time order and the order of equal times are kept.
		e := *r.Audit
		b := bucket(tx, bktAudit)
		var k []byte
		for {
			k = auditKey(e.Time, nextSeq())
			if b.Get(k) == nil {
				break
			}
		}
		if e.ID == "" {
			e.ID = hex.EncodeToString(k)
		}
		return putJSON(b, k, e)
	}
	return fmt.Errorf("unknown record kind %q", r.Kind)
}

// importGrant writes g with every refresh token hash of its family indexed.
func importGrant(tx *bolt.Tx, g storage.Grant, family [][]byte) error {
	if g.ID == "" {
		return errors.New("grant without id")
	}
	for what, v := range map[string]string{"grant id": g.ID, "client id": g.ClientID, "subject": g.Subject} {
		if err := checkComposite(what, v); err != nil {
			return err
		}
	}
	if err := putNew(bucket(tx, bktGrants), []byte(g.ID), g); err != nil {
		return err
	}
	idx := bucket(tx, bktRefreshIndex)
	seen := make(map[string]bool, len(family)+2)
	for _, h := range append([][]byte{g.RefreshHash, g.PreviousHash}, family...) {
		if h == nil || seen[string(h)] {
			continue
		}
		seen[string(h)] = true
		if err := checkHash("refresh token", h); err != nil {
			return err
		}
		if idx.Get(h) != nil {
			return fmt.Errorf("refresh token: %w", storage.ErrAlreadyExists)
		}
		if err := indexRefresh(tx, g.ID, h); err != nil {
			return err
		}
	}
	if err := bucket(tx, bktGrantsByClient).Put(lp(g.ClientID, []byte(g.ID)), nil); err != nil {
		return err
	}
	return bucket(tx, bktGrantsBySubject).Put(lp(g.Subject, []byte(g.ID)), nil)
}
