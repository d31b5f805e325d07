package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migration is one schema change. Migrations are append-only: a released
// migration is never edited, a change is a new, higher version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists every schema change in order. The schema is documented
// in doc.go.
var migrations = []migration{
	{1, "initial schema", `
CREATE TABLE mcpauth_clients (
	id         text PRIMARY KEY,
	kind       text NOT NULL,
	disabled   boolean NOT NULL DEFAULT false,
	created_at timestamptz,
	data       jsonb NOT NULL
);

CREATE TABLE mcpauth_codes (
	hash       bytea PRIMARY KEY,
	client_id  text NOT NULL,
	grant_id   text NOT NULL,
	expires_at timestamptz,
	used_at    timestamptz,
	data       jsonb NOT NULL
);
CREATE INDEX mcpauth_codes_expires_at ON mcpauth_codes (expires_at);

CREATE TABLE mcpauth_grants (
	id         text PRIMARY KEY,
	client_id  text NOT NULL,
	subject    text NOT NULL,
	created_at timestamptz,
	expires_at timestamptz,
	revoked_at timestamptz,
	data       jsonb NOT NULL
);
CREATE INDEX mcpauth_grants_client_id ON mcpauth_grants (client_id);
CREATE INDEX mcpauth_grants_subject ON mcpauth_grants (subject);
CREATE INDEX mcpauth_grants_expires_at ON mcpauth_grants (expires_at);

CREATE TABLE mcpauth_refresh_tokens (
	hash     bytea PRIMARY KEY,
	grant_id text NOT NULL REFERENCES mcpauth_grants (id) ON DELETE CASCADE
);
CREATE INDEX mcpauth_refresh_tokens_grant_id ON mcpauth_refresh_tokens (grant_id);

CREATE TABLE mcpauth_signing_keys (
	kid        text PRIMARY KEY,
	created_at timestamptz,
	retired_at timestamptz,
	data       jsonb NOT NULL
);

CREATE TABLE mcpauth_consents (
	subject    text NOT NULL,
	client_id  text NOT NULL,
	expires_at timestamptz,
	data       jsonb NOT NULL,
	PRIMARY KEY (subject, client_id)
);
CREATE INDEX mcpauth_consents_client_id ON mcpauth_consents (client_id);

CREATE TABLE mcpauth_accounts (
	id    text PRIMARY KEY,
	email text UNIQUE,
	data  jsonb NOT NULL
);

CREATE TABLE mcpauth_identities (
	provider   text NOT NULL,
	subject    text NOT NULL,
	account_id text NOT NULL REFERENCES mcpauth_accounts (id) ON DELETE CASCADE,
	PRIMARY KEY (provider, subject)
);
CREATE INDEX mcpauth_identities_account_id ON mcpauth_identities (account_id);

CREATE TABLE mcpauth_sessions (
	hash       bytea PRIMARY KEY,
	account_id text NOT NULL,
	expires_at timestamptz,
	data       jsonb NOT NULL
);
CREATE INDEX mcpauth_sessions_account_id ON mcpauth_sessions (account_id);
CREATE INDEX mcpauth_sessions_expires_at ON mcpauth_sessions (expires_at);

CREATE TABLE mcpauth_tickets (
	hash       bytea PRIMARY KEY,
	kind       text NOT NULL,
	expires_at timestamptz,
	data       jsonb NOT NULL
);
CREATE INDEX mcpauth_tickets_expires_at ON mcpauth_tickets (expires_at);

CREATE TABLE mcpauth_audit (
	seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id        text NOT NULL,
	at        timestamptz NOT NULL,
	at_ns     bigint NOT NULL,
	type      text NOT NULL,
	client_id text NOT NULL DEFAULT '',
	subject   text NOT NULL DEFAULT '',
	data      jsonb NOT NULL
);
CREATE INDEX mcpauth_audit_order ON mcpauth_audit (at_ns, seq);
CREATE INDEX mcpauth_audit_client_id ON mcpauth_audit (client_id, at_ns);
CREATE INDEX mcpauth_audit_subject ON mcpauth_audit (subject, at_ns);
`},
	{2, "email verifications", `
CREATE TABLE mcpauth_email_verifications (
	hash       bytea PRIMARY KEY,
	account_id text NOT NULL,
	expires_at timestamptz NOT NULL,
	data       jsonb NOT NULL
);
CREATE INDEX mcpauth_email_verifications_account_id ON mcpauth_email_verifications (account_id);
CREATE INDEX mcpauth_email_verifications_expires_at ON mcpauth_email_verifications (expires_at);
`},
	{3, "replays", `
CREATE TABLE mcpauth_replays (
	hash       bytea PRIMARY KEY,
	expires_at timestamptz NOT NULL
);
CREATE INDEX mcpauth_replays_expires_at ON mcpauth_replays (expires_at);
`},
	{4, "shared limits", `
CREATE TABLE mcpauth_limits (
	hash   bytea PRIMARY KEY,
	end_ns bigint NOT NULL
);
CREATE INDEX mcpauth_limits_end_ns ON mcpauth_limits (end_ns);
`},
}

// migrate applies the pending migrations in one transaction holding a
// transaction-level advisory lock derived from the schema name: instances
// starting together queue on the lock, the first applies, the others find
// nothing left to do. A failure rolls every step back.
func (s *Store) migrate(ctx context.Context) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		s.applied = 0
		name := s.schema
		if name == "" {
			if err := tx.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&name); err != nil {
				return fmt.Errorf("pgstore: migrate: current schema: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('caddy-mcpauth migrate ' || $1, 0))`, name); err != nil {
			return fmt.Errorf("pgstore: migrate: advisory lock: %w", err)
		}
		if s.schema != "" {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
				return fmt.Errorf("pgstore: migrate: %w", err)
			}
			if !exists {
				if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
					return fmt.Errorf("pgstore: migrate: create schema: %w", err)
				}
			}
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
				return fmt.Errorf("pgstore: migrate: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS mcpauth_schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return fmt.Errorf("pgstore: migrate: create migrations table: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM mcpauth_schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("pgstore: migrate: read version: %w", err)
		}
		latest := migrations[len(migrations)-1].version
		if current > latest {
			return fmt.Errorf("pgstore: database schema version %d is newer than this build supports (%d): upgrade caddy-mcpauth", current, latest)
		}
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("pgstore: migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mcpauth_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("pgstore: migration %d: record: %w", m.version, err)
			}
			s.applied++
			s.log.Info("pgstore: applied schema migration", "version", m.version, "name", m.name, "schema", name)
		}
		return nil
	})
}

// SchemaVersion returns the highest schema migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM mcpauth_schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("pgstore: schema version: %w", err)
	}
	return v, nil
}
