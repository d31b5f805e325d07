package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

var _ storage.Snapshotter = (*Store)(nil)

// Export implements storage.Snapshotter from one REPEATABLE READ, READ ONLY
// transaction: every record comes from the same snapshot while the other
// instances carry on writing. Each kind comes in primary-key order; audit
// events oldest first (event time, then append order). emit runs while a
// query of the snapshot is open on one pool connection; it must not call
// this store.
func (s *Store) Export(ctx context.Context, emit func(storage.Record) error) error {
	const op = "export"
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("pgstore: export: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// each runs q and calls fn with every row, stopping at the first error.
	each := func(q string, fn func(pgx.Rows) error) error {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return dbErr(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return dbErr(op, err)
		}
		return nil
	}
	// doc decodes a single jsonb column into a new T and emits it.
	doc := func(kind string, q string, wrap func(data []byte) (storage.Record, error)) error {
		return each(q, func(rows pgx.Rows) error {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				return dbErr(op, err)
			}
			r, err := wrap(data)
			if err != nil {
				return err
			}
			r.Kind = kind
			return emit(r)
		})
	}
	steps := []func() error{
		func() error {
			return doc(storage.KindClient, `SELECT data FROM mcpauth_clients ORDER BY id COLLATE "C"`, func(d []byte) (storage.Record, error) {
				var c storage.Client
				return storage.Record{Client: &c}, decode(op, d, &c)
			})
		},
		func() error {
			return doc(storage.KindSigningKey, `SELECT data FROM mcpauth_signing_keys ORDER BY kid COLLATE "C"`, func(d []byte) (storage.Record, error) {
				var k storage.SigningKey
				return storage.Record{Key: &k}, decode(op, d, &k)
			})
		},
		func() error {
			return doc(storage.KindAccount, `SELECT data FROM mcpauth_accounts ORDER BY id COLLATE "C"`, func(d []byte) (storage.Record, error) {
				var a storage.Account
				return storage.Record{Account: &a}, decode(op, d, &a)
			})
		},
		func() error {
			return each(`SELECT provider, subject, account_id FROM mcpauth_identities
ORDER BY provider COLLATE "C", subject COLLATE "C"`, func(rows pgx.Rows) error {
				var l storage.IdentityLink
				if err := rows.Scan(&l.Provider, &l.Subject, &l.AccountID); err != nil {
					return dbErr(op, err)
				}
				return emit(storage.Record{Kind: storage.KindIdentity, Identity: &l})
			})
		},
		func() error {
			return doc(storage.KindConsent, `SELECT data FROM mcpauth_consents
ORDER BY client_id COLLATE "C", subject COLLATE "C"`, func(d []byte) (storage.Record, error) {
				var c storage.Consent
				return storage.Record{Consent: &c}, decode(op, d, &c)
			})
		},
		func() error {
			return each(`SELECT g.data, coalesce(array_agg(t.hash ORDER BY t.hash) FILTER (WHERE t.hash IS NOT NULL), '{}')
FROM mcpauth_grants g LEFT JOIN mcpauth_refresh_tokens t ON t.grant_id = g.id
GROUP BY g.id ORDER BY g.id COLLATE "C"`, func(rows pgx.Rows) error {
				var (
					data   []byte
					hashes [][]byte
				)
				if err := rows.Scan(&data, &hashes); err != nil {
					return dbErr(op, err)
				}
				var g storage.Grant
				if err := decode(op, data, &g); err != nil {
					return err
				}
				if len(hashes) == 0 {
					hashes = nil
				}
				return emit(storage.Record{Kind: storage.KindGrant, Grant: &g, RefreshHashes: hashes})
			})
		},
		func() error {
			return each(`SELECT hash, data FROM mcpauth_codes ORDER BY hash`, func(rows pgx.Rows) error {
				var (
					hash, data []byte
					c          storage.AuthCode
				)
				if err := rows.Scan(&hash, &data); err != nil {
					return dbErr(op, err)
				}
				if err := decode(op, data, &c); err != nil {
					return err
				}
				c.Hash = hash
				return emit(storage.Record{Kind: storage.KindCode, Code: &c})
			})
		},
		func() error {
			return each(`SELECT hash, data FROM mcpauth_sessions ORDER BY hash`, func(rows pgx.Rows) error {
				var (
					hash, data []byte
					ss         storage.Session
				)
				if err := rows.Scan(&hash, &data); err != nil {
					return dbErr(op, err)
				}
				if err := decode(op, data, &ss); err != nil {
					return err
				}
				ss.Hash = hash
				return emit(storage.Record{Kind: storage.KindSession, Session: &ss})
			})
		},
		func() error {
			return each(`SELECT hash, data FROM mcpauth_tickets ORDER BY hash`, func(rows pgx.Rows) error {
				var (
					hash, data []byte
					t          storage.Ticket
				)
				if err := rows.Scan(&hash, &data); err != nil {
					return dbErr(op, err)
				}
				if err := decode(op, data, &t); err != nil {
					return err
				}
				t.Hash = hash
				return emit(storage.Record{Kind: storage.KindTicket, Ticket: &t})
			})
		},
		func() error {
			return doc(storage.KindAudit, `SELECT data FROM mcpauth_audit ORDER BY at_ns, seq`, func(d []byte) (storage.Record, error) {
				var e storage.AuditEvent
				return storage.Record{Audit: &e}, decode(op, d, &e)
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// importTables are every table Import fills, locked and checked empty first.
const importTables = `mcpauth_clients, mcpauth_signing_keys, mcpauth_accounts, mcpauth_identities,
	mcpauth_consents, mcpauth_grants, mcpauth_refresh_tokens, mcpauth_codes, mcpauth_sessions,
	mcpauth_tickets, mcpauth_audit`

// importBatch is how many statements Import sends per round trip.
const importBatch = 512

// Import implements storage.Snapshotter in one transaction: it locks every
// table against writers (EXCLUSIVE mode: a running instance's reads go on,
// its writes wait), refuses a database that holds records
// (storage.ErrNotEmpty), then inserts the records in batches of round
// trips. Any error rolls everything back: a failed import leaves the
// database empty and can be run again. Identities must come after their
// accounts (Export's order).
func (s *Store) Import(ctx context.Context, next func() (storage.Record, error)) error {
	const op = "import"
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgstore: import: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE `+importTables+` IN EXCLUSIVE MODE`); err != nil {
		return dbErr(op+": lock tables", err)
	}
	if err := checkEmpty(ctx, tx); err != nil {
		return err
	}
	if err := insertRecords(ctx, tx, next); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: import: commit: %w", err)
	}
	return nil
}

// checkEmpty fails with storage.ErrNotEmpty when any table Import fills
// holds a row or the mark of an unfinished copy exists. The caller holds
// the EXCLUSIVE locks of importTables.
func checkEmpty(ctx context.Context, tx pgx.Tx) error {
	const op = "import"
	marked, err := copyMarked(ctx, tx)
	if err != nil {
		return err
	}
	if marked {
		return fmt.Errorf("pgstore: import: the database holds an unfinished copy: %w", storage.ErrNotEmpty)
	}
	var used bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mcpauth_clients) OR EXISTS (SELECT 1 FROM mcpauth_signing_keys)
	OR EXISTS (SELECT 1 FROM mcpauth_accounts) OR EXISTS (SELECT 1 FROM mcpauth_identities)
	OR EXISTS (SELECT 1 FROM mcpauth_consents) OR EXISTS (SELECT 1 FROM mcpauth_grants)
	OR EXISTS (SELECT 1 FROM mcpauth_refresh_tokens) OR EXISTS (SELECT 1 FROM mcpauth_codes)
	OR EXISTS (SELECT 1 FROM mcpauth_sessions) OR EXISTS (SELECT 1 FROM mcpauth_tickets)
	OR EXISTS (SELECT 1 FROM mcpauth_audit)`).Scan(&used); err != nil {
		return dbErr(op, err)
	}
	if used {
		return fmt.Errorf("pgstore: import: %w", storage.ErrNotEmpty)
	}
	return nil
}

// insertRecords inserts the records next returns until io.EOF, importBatch
// statements per round trip.
func insertRecords(ctx context.Context, tx pgx.Tx, next func() (storage.Record, error)) error {
	const op = "import"
	b := &pgx.Batch{}
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		err := tx.SendBatch(ctx, b).Close()
		b = &pgx.Batch{}
		return dbErr(op, err)
	}
	for n := 1; ; n++ {
		r, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := queueRecord(b, r); err != nil {
			return fmt.Errorf("pgstore: import %s record %d: %w", r.Kind, n, err)
		}
		if b.Len() >= importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

var _ storage.BatchImporter = (*Store)(nil)

// copyMarkTable marks a database that BeginImport started filling and
// FinishImport has not finished: it exists only during a copy (created by
// BeginImport, dropped by FinishImport, so no migration adds it), and Open
// refuses a database where it exists.
const copyMarkTable = "mcpauth_copy_incomplete"

// copyMarked reports whether the mark table exists (on the search_path,
// as every table of the store).
func copyMarked(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	var marked bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, copyMarkTable).Scan(&marked); err != nil {
		return false, dbErr("check copy mark", err)
	}
	return marked, nil
}

// BeginImport implements storage.BatchImporter: in one transaction it locks
// every table in EXCLUSIVE mode, checks the database is empty and creates
// the mark table.
func (s *Store) BeginImport(ctx context.Context) error {
	const op = "begin import"
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgstore: %s: begin: %w", op, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE `+importTables+` IN EXCLUSIVE MODE`); err != nil {
		return dbErr(op+": lock tables", err)
	}
	if err := checkEmpty(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE `+copyMarkTable+` (started_at timestamptz NOT NULL)`); err != nil {
		return dbErr(op+": mark", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+copyMarkTable+` (started_at) VALUES ($1)`, s.now().UTC()); err != nil {
		return dbErr(op+": mark", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: %s: commit: %w", op, err)
	}
	return nil
}

// ImportBatch implements storage.BatchImporter: recs in one transaction,
// which first locks the mark table (and so fails unless a copy is in
// progress, and waits for a concurrent batch or FinishImport).
func (s *Store) ImportBatch(ctx context.Context, recs []storage.Record) error {
	const op = "import batch"
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgstore: %s: begin: %w", op, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := lockMark(ctx, tx, op); err != nil {
		return err
	}
	i := 0
	if err := insertRecords(ctx, tx, func() (storage.Record, error) {
		if i == len(recs) {
			return storage.Record{}, io.EOF
		}
		i++
		return recs[i-1], nil
	}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: %s: commit: %w", op, err)
	}
	return nil
}

// FinishImport implements storage.BatchImporter: it drops the mark table.
func (s *Store) FinishImport(ctx context.Context) error {
	const op = "finish import"
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgstore: %s: begin: %w", op, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := lockMark(ctx, tx, op); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DROP TABLE `+copyMarkTable); err != nil {
		return dbErr(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: %s: commit: %w", op, err)
	}
	return nil
}

// lockMark locks the mark table, failing when no copy is in progress.
func lockMark(ctx context.Context, tx pgx.Tx, op string) error {
	marked, err := copyMarked(ctx, tx)
	if err != nil {
		return err
	}
	if !marked {
		return fmt.Errorf("pgstore: %s: no copy in progress (BeginImport first)", op)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+copyMarkTable+` IN EXCLUSIVE MODE`); err != nil {
		return dbErr(op+": lock mark", err)
	}
	return nil
}

// CheckComplete implements storage.BatchImporter.
func (s *Store) CheckComplete(ctx context.Context) error {
	marked, err := copyMarked(ctx, s.pool)
	if err != nil {
		return err
	}
	if marked {
		return storage.ErrIncompleteCopy
	}
	return nil
}

// queueRecord validates r and queues its inserts, columns derived exactly
// as the role methods derive them.
func queueRecord(b *pgx.Batch, r storage.Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	const op = "import"
	switch r.Kind {
	case storage.KindClient:
		c := r.Client
		if c.ID == "" {
			return errors.New("client without id")
		}
		data, err := encode(op, c)
		if err != nil {
			return err
		}
		b.Queue(upsertClient, c.ID, string(c.Kind), c.Disabled, ts(c.CreatedAt), data)
	case storage.KindSigningKey:
		k := r.Key
		if k.ID == "" {
			return errors.New("signing key without id")
		}
		data, err := encode(op, k)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_signing_keys (kid, created_at, retired_at, data) VALUES ($1, $2, $3, $4)`,
			k.ID, ts(k.CreatedAt), ts(k.RetiredAt), data)
	case storage.KindAccount:
		a := r.Account
		if a.ID == "" {
			return errors.New("account without id")
		}
		data, err := encode(op, a)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_accounts (id, email, data) VALUES ($1, $2, $3)`, a.ID, email(a.Email), data)
	case storage.KindIdentity:
		l := r.Identity
		if l.Provider == "" || l.Subject == "" {
			return errors.New("identity without provider or subject")
		}
		b.Queue(`INSERT INTO mcpauth_identities (provider, subject, account_id) VALUES ($1, $2, $3)`,
			l.Provider, l.Subject, l.AccountID)
	case storage.KindConsent:
		c := r.Consent
		if c.Subject == "" || c.ClientID == "" {
			return errors.New("consent without subject or client")
		}
		data, err := encode(op, c)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_consents (subject, client_id, expires_at, data) VALUES ($1, $2, $3, $4)`,
			c.Subject, c.ClientID, ts(c.ExpiresAt), data)
	case storage.KindGrant:
		g := r.Grant
		if err := validGrant(*g); err != nil {
			return err
		}
		data, err := encode(op, g)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_grants (id, client_id, subject, created_at, expires_at, revoked_at, data)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, g.ID, g.ClientID, g.Subject, ts(g.CreatedAt), ts(g.ExpiresAt), ts(g.RevokedAt), data)
		seen := make(map[string]bool, len(r.RefreshHashes)+2)
		for _, h := range append([][]byte{g.RefreshHash, g.PreviousHash}, r.RefreshHashes...) {
			if h == nil || seen[string(h)] {
				continue
			}
			seen[string(h)] = true
			if err := checkHash("refresh token", h); err != nil {
				return err
			}
			b.Queue(`INSERT INTO mcpauth_refresh_tokens (hash, grant_id) VALUES ($1, $2)`, h, g.ID)
		}
	case storage.KindCode:
		c := r.Code
		if err := checkHash("code", c.Hash); err != nil {
			return err
		}
		data, err := encode(op, c)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_codes (hash, client_id, grant_id, expires_at, used_at, data)
VALUES ($1, $2, $3, $4, $5, $6)`, c.Hash, c.ClientID, c.GrantID, ts(c.ExpiresAt), ts(c.UsedAt), data)
	case storage.KindSession:
		ss := r.Session
		if err := checkHash("session", ss.Hash); err != nil {
			return err
		}
		if ss.AccountID == "" {
			return errors.New("session without account")
		}
		data, err := encode(op, ss)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_sessions (hash, account_id, expires_at, data) VALUES ($1, $2, $3, $4)`,
			ss.Hash, ss.AccountID, ts(ss.ExpiresAt), data)
	case storage.KindTicket:
		t := r.Ticket
		if err := checkHash("ticket", t.Hash); err != nil {
			return err
		}
		if t.Kind == "" {
			return errors.New("ticket without kind")
		}
		data, err := encode(op, t)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mcpauth_tickets (hash, kind, expires_at, data) VALUES ($1, $2, $3, $4)`,
			t.Hash, t.Kind, ts(t.ExpiresAt), data)
	case storage.KindAudit:
		e := *r.Audit
		if e.ID == "" {
			e.ID = auditID(e.Time)
		}
		data, err := encode(op, e)
		if err != nil {
			return err
		}
		// Appended in arrival order (oldest first): seq keeps the order of
		// events of the same time.
		b.Queue(`INSERT INTO mcpauth_audit (id, at, at_ns, type, client_id, subject, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.ID, e.Time, auditNanos(e.Time), e.Type, e.ClientID, e.Subject, data)
	default:
		return fmt.Errorf("unknown record kind %q", r.Kind)
	}
	return nil
}
