package pgstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Config configures a PostgreSQL store.
type Config struct {
	// DSN is a libpq connection string or URL, e.g.
	// "postgres://mcpauth:secret@db.internal:5432/mcpauth?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem".
	// TLS is configured through it: sslmode (disable, require, verify-ca,
	// verify-full), sslrootcert, sslcert, sslkey, sslpassword. Use
	// sslmode=verify-full in production. pgx pool settings in the DSN
	// (pool_max_conns, ...) apply unless overridden below. The DSN carries a
	// password: it is never logged.
	DSN string
	// MaxConns caps the pool (0: pgx's default, max(4, number of CPUs)).
	MaxConns int32
	// MinConns is the number of idle connections kept open (0: none).
	MinConns int32
	// ConnMaxLifetime closes connections older than this (0: pgx's default, 1h).
	ConnMaxLifetime time.Duration
	// Logger receives migration and retry messages (nil: discarded).
	Logger *slog.Logger
	// Schema, when set, is the PostgreSQL schema holding the tables: it is
	// created at Open when missing and becomes the connections' search_path.
	// Empty: the first schema of the DSN's search_path (usually "public").
	// Letters, digits and underscores, starting with a letter or underscore,
	// at most 63 bytes.
	Schema string
	// Now is the clock used where a record carries no time of its own (an
	// audit event with a zero Time, a revocation at a zero time). Nil means
	// time.Now.
	Now func() time.Time
}

// Store is a PostgreSQL storage backend. It implements storage.Backend and
// is safe for concurrent use by any number of goroutines and processes.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	now    func() time.Time
	schema string
	// applied is the number of migrations this Open applied (tests).
	applied int
}

var _ storage.Backend = (*Store)(nil)

var schemaName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Open connects to PostgreSQL, applies pending schema migrations (under an
// advisory lock, so that instances starting together migrate exactly once)
// and returns the store. Close releases the pool.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errors.New("pgstore: empty DSN")
	}
	if cfg.Schema != "" && !schemaName.MatchString(cfg.Schema) {
		return nil, fmt.Errorf("pgstore: invalid schema name %q (letters, digits, underscore; at most 63)", cfg.Schema)
	}
	if cfg.MaxConns < 0 || cfg.MinConns < 0 || cfg.ConnMaxLifetime < 0 {
		return nil, errors.New("pgstore: negative pool limit")
	}
	if cfg.MaxConns > 0 && cfg.MinConns > cfg.MaxConns {
		return nil, fmt.Errorf("pgstore: min_conns %d exceeds max_conns %d", cfg.MinConns, cfg.MaxConns)
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx redacts the password in parse errors.
		return nil, fmt.Errorf("pgstore: parse DSN: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = cfg.MinConns
	}
	if pc.MinConns > pc.MaxConns {
		pc.MinConns = pc.MaxConns
	}
	if cfg.ConnMaxLifetime > 0 {
		pc.MaxConnLifetime = cfg.ConnMaxLifetime
	}
	if cfg.Schema != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "caddy-mcpauth"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{pool: pool, log: log, now: now, schema: cfg.Schema}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.CheckComplete(ctx); err != nil {
		// A half-filled copy: no server must start on it.
		pool.Close()
		return nil, fmt.Errorf("pgstore: open: %w (drop the mcpauth_* tables or the schema)", err)
	}
	return s, nil
}

// Ping checks that the database answers (for health checks).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: ping: %w", err)
	}
	return nil
}

// Close releases the connection pool. Calling it more than once is safe.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// maxAttempts bounds how often a transaction is retried after a
// serialization failure or a deadlock.
const maxAttempts = 6

// retryable reports PostgreSQL errors after which the whole transaction may
// simply run again: serialization_failure and deadlock_detected.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// inTx runs fn in a READ COMMITTED transaction (rows that must not change
// under it are locked explicitly with SELECT ... FOR UPDATE or by an UPDATE)
// and commits when fn returns nil. On serialization failure or deadlock it
// runs fn again, at most maxAttempts times, with a short randomized backoff:
// fn must therefore not have side effects outside tx beyond what may be
// repeated. Any error of fn rolls the transaction back, except errCommit
// values, which commit what was written and then return the wrapped error.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = s.once(ctx, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		s.log.Debug("pgstore: retrying transaction", "attempt", attempt, "error", err)
		wait := time.Duration(1<<attempt) * time.Millisecond
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(wait)))
		t := time.NewTimer(wait + time.Duration(n.Int64()))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("pgstore: %w (after %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// errCommit asks inTx to commit and then return err.
type errCommit struct{ err error }

func (e errCommit) Error() string { return e.err.Error() }
func (e errCommit) Unwrap() error { return e.err }

func (s *Store) once(ctx context.Context, fn func(pgx.Tx) error) (err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	ferr := fn(tx)
	ec, commitAnyway := ferr.(errCommit)
	if ferr != nil && !commitAnyway {
		return ferr
	}
	if cerr := tx.Commit(ctx); cerr != nil {
		return fmt.Errorf("pgstore: commit: %w", cerr)
	}
	if ferr != nil {
		return ec.err
	}
	return nil
}

// dbErr maps PostgreSQL errors onto the storage sentinels.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgstore: %s: %w", op, storage.ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("pgstore: %s: %w", op, storage.ErrAlreadyExists)
		case "23503": // foreign_key_violation
			return fmt.Errorf("pgstore: %s: %w", op, storage.ErrNotFound)
		}
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

func notFound(op string) error { return fmt.Errorf("pgstore: %s: %w", op, storage.ErrNotFound) }

// ts converts a time to a nullable timestamptz parameter (zero: NULL).
func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func encode(op string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: encode: %w", op, err)
	}
	return b, nil
}

func decode(op string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("pgstore: %s: decode: %w", op, err)
	}
	return nil
}

// jsonTime is how encoding/json writes a time.Time, for jsonb updates done
// in SQL; it keeps nanoseconds like the Go-encoded documents.
func jsonTime(t time.Time) string {
	b, _ := t.MarshalJSON()
	var s string
	_ = json.Unmarshal(b, &s)
	return s
}

// checkHash refuses to store anything but a SHA-256 under a hash key, so a
// caller that forgot to hash a secret fails loudly instead of persisting it.
func checkHash(what string, h []byte) error {
	if len(h) != sha256.Size {
		return fmt.Errorf("pgstore: %s hash must be a %d-byte SHA-256, got %d bytes", what, sha256.Size, len(h))
	}
	return nil
}

// expired reports whether a record ending at end is over at now. A zero end
// never expires.
func expired(end, now time.Time) bool {
	return !end.IsZero() && !now.Before(end)
}

// randUint32 returns a random uint32 from crypto/rand.
func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
