// Package pgstore is the PostgreSQL storage backend: it implements
// storage.Backend so that several Caddy instances share one authorization
// server (clients, codes, grants, signing keys, consents, accounts,
// sessions, tickets and the audit log).
//
// # Connecting
//
// Open takes a Config whose DSN is a libpq URL or key/value string, parsed by
// pgx (github.com/jackc/pgx/v5, pgxpool). TLS is set in the DSN: sslmode
// (use verify-full in production), sslrootcert, sslcert, sslkey. Pool limits
// come from Config (MaxConns, MinConns, ConnMaxLifetime) or the DSN's
// pool_* parameters. Config.Schema puts every table in a schema of its own
// (created when missing, set as the connections' search_path); otherwise the
// tables go to the first schema of the search_path. The DSN is never logged.
//
// # Migrations
//
// Schema changes are ordered, versioned and append-only. Open applies the
// pending ones in a single transaction that first takes
// pg_advisory_xact_lock(hashtextextended('caddy-mcpauth migrate ' || schema, 0)):
// instances starting together queue on the lock, one applies, the others find
// the versions recorded in mcpauth_schema_migrations(version, name,
// applied_at) and go on. A failing migration rolls back entirely. A database
// migrated by a newer build (higher version) is refused.
//
// # Schema (version 1)
//
// Every record is stored whole as a jsonb document (column data, the same
// JSON encoding as the bbolt backend, so nothing is lost in either
// direction), beside the key, index and state columns that SQL needs.
// Timestamp columns are NULL for zero times; records whose expires_at is
// NULL never expire.
//
//	mcpauth_clients        id PK, kind, disabled, created_at, data
//	mcpauth_codes          hash bytea PK (SHA-256 of the code), client_id, grant_id,
//	                       expires_at, used_at, data
//	mcpauth_grants         id PK, client_id, subject, created_at, expires_at,
//	                       revoked_at, data (current/previous refresh hashes, generation)
//	mcpauth_refresh_tokens hash bytea PK, grant_id -> mcpauth_grants ON DELETE CASCADE:
//	                       every refresh-token hash ever issued to a grant, kept
//	                       until the grant expires, so that any old token of the
//	                       family is recognized as reuse
//	mcpauth_signing_keys   kid PK, created_at, retired_at, data (private JWK)
//	mcpauth_consents       (subject, client_id) PK, expires_at, data
//	mcpauth_accounts       id PK, email UNIQUE (NULL when empty), data
//	mcpauth_identities     (provider, subject) PK, account_id -> mcpauth_accounts
//	mcpauth_sessions       hash bytea PK (SHA-256 of the session id), account_id,
//	                       expires_at, data
//	mcpauth_tickets        (kind, hash) PK, expires_at, data
//	mcpauth_email_verifications hash bytea PK (SHA-256 of the link's token),
//	                       account_id, expires_at, data (schema version 2)
//	mcpauth_replays        hash bytea PK (SHA-256 of issuer and jti), expires_at
//	                       (schema version 3; used assertion identifiers)
//	mcpauth_limits         hash bytea PK (SHA-256 of limiter and requester key),
//	                       end_ns (Unix ns at which the shared token bucket is
//	                       full again; schema version 4, shared_limits)
//	mcpauth_audit          id PK (time-ordered), at, type, client_id, subject, data
//
// Codes, refresh tokens, session ids and ticket keys are stored only as
// SHA-256 hashes; client secrets and passwords as PHC hashes; the private
// signing keys in the clear inside the database, so protect it (and its
// backups) like the key files of the bbolt backend.
//
// # Concurrency
//
// Transactions run at READ COMMITTED and lock what they decide on:
// RedeemCode takes the code's row (SELECT ... FOR UPDATE), marks it used and
// creates the grant in the same transaction, so of concurrent redemptions on
// any number of instances exactly one calls issue; RotateRefresh locks the
// grant's row, so rotation is a compare-and-swap and reuse revokes the grant
// in the same transaction; AddSigningKey serializes key writers with a
// SHARE ROW EXCLUSIVE table lock and compares the newest unretired kid;
// TakeTicket is a single DELETE ... RETURNING. Unique violations map to
// storage.ErrAlreadyExists. Serialization failures (40001) and deadlocks
// (40P01) rerun the transaction, at most 6 times with a short random backoff.
//
// # Moving a store
//
// Export and Import (storage.Snapshotter, used by `caddy-mcpauth mcpauth
// migrate-store`) move a whole store between backends. Export reads one
// REPEATABLE READ, READ ONLY transaction (a consistent snapshot while other
// instances write); Import locks every table in EXCLUSIVE mode, refuses a
// database that holds any record, and inserts in batched round trips in one
// transaction, all or nothing. Audit events keep their ids and order.
// The batched import migrate-store uses (storage.BatchImporter) makes the
// same checks in BeginImport, which also creates the table
// mcpauth_copy_incomplete (no migration: it exists only while a copy is
// unfinished); each ImportBatch is a transaction of its own that first
// locks that table (refused without it); FinishImport drops it. Open
// refuses a database where it exists (storage.ErrIncompleteCopy).
//
// # Testing
//
// The tests run against a real PostgreSQL server named by
// MCPAUTH_TEST_POSTGRES_DSN; each test works in a fresh schema of its own
// (dropped at the end), so tests run in parallel and leave nothing behind.
// Without the variable they are skipped with a message, or fail when
// CI=true. scripts/pg-test.sh starts a throwaway server (installing Debian's
// postgresql package first when root and it is missing):
//
//	scripts/pg-test.sh run go test -race ./storage/pgstore/
//
//	eval "$(scripts/pg-test.sh start)"
//	go test -race ./storage/pgstore/
//	go test -run '^$' -bench BenchmarkRedeemCode ./storage/pgstore/
//	scripts/pg-test.sh stop
package pgstore
