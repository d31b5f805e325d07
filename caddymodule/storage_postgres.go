package caddymodule

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

func openPostgres(s StorageConfig, logger *slog.Logger) (storage.Backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 10
	}
	return pgstore.Open(ctx, pgstore.Config{DSN: s.DSN, MaxConns: maxConns, Logger: logger})
}
