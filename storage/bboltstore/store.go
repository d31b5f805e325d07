package bboltstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is not set.
const DefaultTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Timeout bounds the wait for the file lock held by another Store or
	// process. Zero or negative means DefaultTimeout: bbolt would otherwise
	// wait forever.
	Timeout time.Duration
	// Logger receives operational messages (never a secret). Nil discards.
	Logger *slog.Logger
	// Now is the clock used where a record carries no time of its own (an
	// audit event with a zero Time). Nil means time.Now.
	Now func() time.Time
	// NoSync skips fsync after each commit. For tests only: a crash can
	// lose or corrupt committed data.
	NoSync bool
}

// Store is a storage.Backend on a bbolt file. It is safe for concurrent use.
type Store struct {
	db  *bolt.DB
	log *slog.Logger
	now func() time.Time
	seq atomic.Uint64 // audit key sequence
	// revGen changes after every commit that can end a token's validity
	// (storage.RevocationGeneration).
	revGen atomic.Uint64
	closer sync.Once
	cerr   error
}

var (
	_ storage.Backend              = (*Store)(nil)
	_ storage.RevocationGeneration = (*Store)(nil)
)

// RevocationGeneration implements storage.RevocationGeneration: it is bumped
// after (never before) every commit that revokes or deletes a grant or
// changes a client, so a reader that saw the old number before reading the
// store can never keep a stale answer under the new one.
func (s *Store) RevocationGeneration() uint64 { return s.revGen.Load() }

// Open opens (creating if needed) the store at path and brings its schema
// up to date. The parent directory is created with mode 0700 and the file
// with mode 0600.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("bboltstore: empty path")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bboltstore: create directory: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("bboltstore: database file is readable by other users; chmod 600 it",
			slog.String("path", path), slog.String("mode", fi.Mode().Perm().String()))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bboltstore: stat %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.Timeout,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bboltstore: open %s: file is locked by another store (waited %s): %w", path, opts.Timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bboltstore: open %s: %w", path, err)
	}
	// Batched writes (code redemption, audit) wait at most this long for
	// company before committing: long enough to share an fsync between
	// concurrent token requests, short enough not to be seen in latency.
	db.MaxBatchDelay = time.Millisecond
	s := &Store{db: db, log: opts.Logger, now: opts.Now}
	if err := s.migrate(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.CheckComplete(context.Background()); err != nil {
		// A half-filled copy: no server must start on it.
		_ = db.Close()
		return nil, fmt.Errorf("bboltstore: open %s: %w", path, err)
	}
	return s, nil
}

// Close releases the file. Calling it more than once is safe.
func (s *Store) Close() error {
	s.closer.Do(func() {
		if err := s.db.Close(); err != nil {
			s.cerr = fmt.Errorf("bboltstore: close: %w", err)
		}
	})
	return s.cerr
}

// Bucket names of schema version 1.
var (
	bktMeta            = []byte("meta")
	keySchemaVersion   = []byte("schema_version")
	bktV1              = []byte("v1")
	bktClients         = []byte("clients")
	bktCodes           = []byte("codes")
	bktGrants          = []byte("grants")
	bktRefreshIndex    = []byte("refresh_index")
	bktRefreshByGrant  = []byte("refresh_by_grant")
	bktGrantsByClient  = []byte("grants_by_client")
	bktGrantsBySubject = []byte("grants_by_subject")
	bktKeys            = []byte("keys")
	bktConsents        = []byte("consents")
	bktAccounts        = []byte("accounts")
	bktAccountsByEmail = []byte("accounts_by_email")
	bktIdentities      = []byte("identities")
	bktSessions        = []byte("sessions")
	bktSessionsByAcct  = []byte("sessions_by_account")
	bktTickets         = []byte("tickets")
	bktAudit           = []byte("audit")
	// Since schema version 2.
	bktVerifications       = []byte("email_verifications")
	bktVerificationsByAcct = []byte("email_verifications_by_account")
	// Since schema version 3.
	bktReplays = []byte("replays")
)

// schema1Buckets are the buckets the first migration creates (frozen: the
// migrations are append-only).
var schema1Buckets = [][]byte{
	bktClients, bktCodes, bktGrants, bktRefreshIndex, bktRefreshByGrant,
	bktGrantsByClient, bktGrantsBySubject, bktKeys, bktConsents, bktAccounts,
	bktAccountsByEmail, bktIdentities, bktSessions, bktSessionsByAcct,
	bktTickets, bktAudit,
}

// v1Buckets lists every bucket under v1/ at the latest schema version.
var v1Buckets = append(append([][]byte(nil), schema1Buckets...), bktVerifications, bktVerificationsByAcct, bktReplays)

// bucket returns v1/name. The migrations guarantee it exists; a missing
// bucket means a damaged file and panics rather than silently dropping data.
func bucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	root := tx.Bucket(bktV1)
	if root == nil {
		panic("bboltstore: bucket v1 missing")
	}
	b := root.Bucket(name)
	if b == nil {
		panic(fmt.Sprintf("bboltstore: bucket v1/%s missing", name))
	}
	return b
}

// view and update run fn in a read or write transaction after checking ctx.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// batch is update through db.Batch: concurrent callers share one commit
// (one fsync) instead of queueing for the single writer. fn may run more
// than once (when another call of the batch fails), so it must reset what
// it captures and be deterministic; its effects count only after a nil
// return reaches the caller.
func (s *Store) batch(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Batch(fn)
}

// getJSON decodes the value under key into v; storage.ErrNotFound when absent.
func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return storage.ErrNotFound
	}
	return decode(raw, v)
}

func decode(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("bboltstore: decode record: %w", err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bboltstore: encode: %w", err)
	}
	return b.Put(key, raw)
}

// lp builds a composite key: 2-byte big-endian length of first, first, then rest.
func lp(first string, rest ...[]byte) []byte {
	n := 2 + len(first)
	for _, r := range rest {
		n += len(r)
	}
	k := make([]byte, 2, n)
	binary.BigEndian.PutUint16(k, uint16(len(first)))
	k = append(k, first...)
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

// maxComposite bounds the first part of a composite key.
const maxComposite = 1<<16 - 1

func checkComposite(what, v string) error {
	if len(v) > maxComposite {
		return fmt.Errorf("bboltstore: %s too long", what)
	}
	return nil
}

// forPrefix calls fn with the suffix of every key of b that starts with prefix.
// fn must not modify b; collect and delete afterwards.
func forPrefix(b *bolt.Bucket, prefix []byte, fn func(suffix, value []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k[len(prefix):], v); err != nil {
			return err
		}
	}
	return nil
}

func hasPrefix(k, p []byte) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}

// checkHash refuses to store anything but a SHA-256 under a hash key, so a
// caller that forgot to hash a secret fails loudly instead of persisting it.
func checkHash(what string, h []byte) error {
	if len(h) != sha256.Size {
		return fmt.Errorf("bboltstore: %s hash must be a %d-byte SHA-256, got %d bytes", what, sha256.Size, len(h))
	}
	return nil
}

// expired reports whether a record ending at end is over at now. A zero end
// never expires.
func expired(end, now time.Time) bool {
	return !end.IsZero() && !now.Before(end)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
