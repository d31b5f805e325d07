package caddymodule

import (
	"log/slog"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// storePool shares one open store per file (or DSN) across config reloads:
// Caddy provisions the new config before it stops the old one, and a second
// bbolt Open of the same file would wait on its own lock.
var storePool = caddy.NewUsagePool()

type poolStore struct{ storage.Backend }

func (p poolStore) Destruct() error { return p.Close() }

// sharedStore returns the shared store for this config, opening it on first use.
func sharedStore(s config.Storage, logger *slog.Logger) (storage.Backend, error) {
	v, _, err := storePool.LoadOrNew(s.PoolKey(), func() (caddy.Destructor, error) {
		b, err := s.Open(logger)
		if err != nil {
			return nil, err
		}
		return poolStore{b}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(poolStore).Backend, nil
}

func releaseSharedStore(s config.Storage) error {
	_, err := storePool.Delete(s.PoolKey())
	return err
}
