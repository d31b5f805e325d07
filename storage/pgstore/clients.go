package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// GetClient returns the client with that id.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	var data []byte
	if err := s.pool.QueryRow(ctx, `SELECT data FROM mcpauth_clients WHERE id = $1`, id).Scan(&data); err != nil {
		return storage.Client{}, dbErr("get client", err)
	}
	var c storage.Client
	return c, decode("get client", data, &c)
}

const upsertClient = `INSERT INTO mcpauth_clients (id, kind, disabled, created_at, data) VALUES ($1, $2, $3, $4, $5)`

// PutClient creates or replaces a client.
func (s *Store) PutClient(ctx context.Context, c storage.Client) error {
	if c.ID == "" {
		return errors.New("pgstore: client without id")
	}
	data, err := encode("put client", c)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, upsertClient+`
ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, disabled = EXCLUDED.disabled,
	created_at = EXCLUDED.created_at, data = EXCLUDED.data`,
		c.ID, string(c.Kind), c.Disabled, ts(c.CreatedAt), data)
	return dbErr("put client", err)
}

// CreateClient creates a client; ErrAlreadyExists when the id is taken.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	if c.ID == "" {
		return errors.New("pgstore: client without id")
	}
	data, err := encode("create client", c)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, upsertClient, c.ID, string(c.Kind), c.Disabled, ts(c.CreatedAt), data)
	return dbErr("create client", err)
}

// DeleteClient removes a client; ErrNotFound when there is none.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mcpauth_clients WHERE id = $1`, id)
	if err != nil {
		return dbErr("delete client", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete client")
	}
	return nil
}

// ListClients returns every client, ordered by id (bytewise, whatever the
// database collation, like the other backends).
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM mcpauth_clients ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, dbErr("list clients", err)
	}
	return collect(rows, "list clients", func(data []byte) (storage.Client, error) {
		var c storage.Client
		return c, decode("list clients", data, &c)
	})
}

// SetClientDisabled flips the disabled flag; ErrNotFound for unknown ids.
func (s *Store) SetClientDisabled(ctx context.Context, id string, disabled bool, now time.Time) error {
	n, err := s.execAudited(ctx, "set client disabled", `UPDATE mcpauth_clients SET disabled = $2,
	data = data || jsonb_build_object('disabled', $2::boolean, 'updated_at', $3::text)
WHERE id = $1`, id, disabled, jsonTime(now))
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("set client disabled")
	}
	return nil
}

// touchInterval is how stale LastUsedAt must be before TouchClient writes.
const touchInterval = time.Hour

// TouchClient records use (LastUsedAt); ErrNotFound for unknown ids. It
// writes only when LastUsedAt is unset or older than an hour, so the token
// endpoint rarely pays a second write.
func (s *Store) TouchClient(ctx context.Context, id string, now time.Time) error {
	c, err := s.GetClient(ctx, id)
	if err != nil {
		return err
	}
	if !c.LastUsedAt.IsZero() && now.Sub(c.LastUsedAt) < touchInterval {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var data []byte
		if err := tx.QueryRow(ctx, `SELECT data FROM mcpauth_clients WHERE id = $1 FOR UPDATE`, id).Scan(&data); err != nil {
			return dbErr("touch client", err)
		}
		var c storage.Client
		if err := decode("touch client", data, &c); err != nil {
			return err
		}
		if !c.LastUsedAt.IsZero() && now.Sub(c.LastUsedAt) < touchInterval {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE mcpauth_clients
SET data = data || jsonb_build_object('last_used_at', $2::text) WHERE id = $1`, id, jsonTime(now))
		return dbErr("touch client", err)
	})
}

// collect decodes rows of one jsonb column.
func collect[T any](rows pgx.Rows, op string, dec func([]byte) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, dbErr(op, err)
		}
		v, err := dec(data)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}
