package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

// Storage chooses where the authorization server keeps its state.
type Storage struct {
	// Backend is "bbolt" (the default: an embedded file) or "postgres".
	Backend string `json:"backend,omitempty"`
	// Path is the bbolt file. Default: mcpauth/mcpauth.db under Caddy's
	// app data directory.
	Path string `json:"path,omitempty"`
	// DSN is the PostgreSQL connection string (use {env.*} for the password).
	// TLS is set through the DSN (sslmode, sslrootcert).
	DSN string `json:"dsn,omitempty"`
	// MaxConns bounds the PostgreSQL connection pool (default 10).
	MaxConns int32 `json:"max_conns,omitempty"`
	// LockTimeout is how long to wait for bbolt's file lock (default 5s).
	// Within one Caddy process the file is shared across config reloads and
	// never waits; the timeout only matters when another process holds it.
	LockTimeout Duration `json:"lock_timeout,omitempty"`
}

// PoolKey identifies a store in a pool of open stores without keeping a
// DSN's password in memory longer than needed.
func (s Storage) PoolKey() string {
	switch s.Backend {
	case "postgres":
		sum := sha256.Sum256([]byte(s.DSN))
		return "postgres:" + hex.EncodeToString(sum[:])
	default:
		return "bbolt:" + s.Path
	}
}

// Resolve sets the defaults (the bbolt file under dataDir) and replaces
// placeholders in the path and DSN.
func (s *Storage) Resolve(replace func(string) string, dataDir string) error {
	if s.Backend == "" {
		s.Backend = "bbolt"
	}
	switch s.Backend {
	case "bbolt":
		if s.Path == "" {
			s.Path = filepath.Join(dataDir, "mcpauth", "mcpauth.db")
		}
		p, err := filepath.Abs(replace(s.Path))
		if err != nil {
			return fmt.Errorf("mcp_auth: storage path: %w", err)
		}
		s.Path = p
	case "postgres":
		s.DSN = replace(s.DSN)
		if s.DSN == "" {
			return errors.New("mcp_auth: storage postgres needs a dsn")
		}
	default:
		return fmt.Errorf("mcp_auth: unknown storage backend %q (bbolt or postgres)", s.Backend)
	}
	if s.LockTimeout <= 0 {
		s.LockTimeout = Duration(5 * time.Second)
	}
	return nil
}

// Open opens the store (after Resolve). The caller shares it across config
// reloads: a second bbolt Open of the same file would wait on its own lock.
func (s Storage) Open(logger *slog.Logger) (storage.Backend, error) {
	if s.Backend == "postgres" {
		return openPostgres(s, logger)
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return nil, fmt.Errorf("mcp_auth: storage folder: %w", err)
	}
	b, err := bboltstore.Open(s.Path, bboltstore.Options{Timeout: time.Duration(s.LockTimeout), Logger: logger})
	if errors.Is(err, storage.ErrIncompleteCopy) {
		return nil, fmt.Errorf("mcp_auth: refusing to start on %s: it holds an unfinished 'mcpauth migrate-store' copy (delete the file and run migrate-store again): %w", s.Path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("mcp_auth: opening %s (is another Caddy process using it? use 'caddy reload' to change a running server): %w", s.Path, err)
	}
	return b, nil
}

func openPostgres(s Storage, logger *slog.Logger) (storage.Backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 10
	}
	return pgstore.Open(ctx, pgstore.Config{DSN: s.DSN, MaxConns: maxConns, Logger: logger})
}
