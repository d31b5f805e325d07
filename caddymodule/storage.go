package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// StorageConfig chooses where the authorization server keeps its state.
type StorageConfig struct {
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
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`
}

// storePool shares one open store per file (or DSN) across config reloads:
// Caddy provisions the new config before it stops the old one, and a second
// bbolt Open of the same file would wait on its own lock.
var storePool = caddy.NewUsagePool()

type poolStore struct{ storage.Backend }

func (p poolStore) Destruct() error { return p.Close() }

// poolKey identifies a store in the pool without keeping a DSN's password
// in memory longer than needed.
func (s StorageConfig) poolKey() string {
	switch s.Backend {
	case "postgres":
		sum := sha256.Sum256([]byte(s.DSN))
		return "postgres:" + hex.EncodeToString(sum[:])
	default:
		return "bbolt:" + s.Path
	}
}

func (s *StorageConfig) provision(repl *caddy.Replacer) error {
	if s.Backend == "" {
		s.Backend = "bbolt"
	}
	switch s.Backend {
	case "bbolt":
		if s.Path == "" {
			s.Path = filepath.Join(caddy.AppDataDir(), "mcpauth", "mcpauth.db")
		}
		p, err := filepath.Abs(repl.ReplaceKnown(s.Path, ""))
		if err != nil {
			return fmt.Errorf("mcp_auth: storage path: %w", err)
		}
		s.Path = p
	case "postgres":
		s.DSN = repl.ReplaceKnown(s.DSN, "")
		if s.DSN == "" {
			return errors.New("mcp_auth: storage postgres needs a dsn")
		}
	default:
		return fmt.Errorf("mcp_auth: unknown storage backend %q (bbolt or postgres)", s.Backend)
	}
	if s.LockTimeout <= 0 {
		s.LockTimeout = caddy.Duration(5 * time.Second)
	}
	return nil
}

// open returns the shared store for this config, opening it on first use.
func (s StorageConfig) open(logger *slog.Logger) (storage.Backend, error) {
	v, _, err := storePool.LoadOrNew(s.poolKey(), func() (caddy.Destructor, error) {
		switch s.Backend {
		case "postgres":
			b, err := openPostgres(s, logger)
			if err != nil {
				return nil, err
			}
			return poolStore{b}, nil
		default:
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
			return poolStore{b}, nil
		}
	})
	if err != nil {
		return nil, err
	}
	return v.(poolStore).Backend, nil
}

func (s StorageConfig) release() error {
	_, err := storePool.Delete(s.poolKey())
	return err
}
