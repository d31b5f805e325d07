package caddymodule

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// backuper is a store that can write a consistent copy of itself (bbolt:
// one read transaction's Tx.WriteTo, while writers carry on).
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// serveBackup streams a copy of the live bbolt store (GET /mcp_auth/backup).
// The copy holds signing keys and password hashes: the admin endpoint is
// as trusted as Caddy's /config.
func (a *AdminAPI) serveBackup(w http.ResponseWriter, r *http.Request) error {
	if err := adminAllow(r, http.MethodGet); err != nil {
		return err
	}
	b, ok := a.app.store.(backuper)
	if !ok {
		return adminError(http.StatusConflict, "backup copies the bbolt store; back up PostgreSQL with pg_dump")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="mcpauth.db"`)
	w.Header().Set("Cache-Control", "no-store")
	// No operation timeout: a large file may take longer than an API call.
	n, err := b.Backup(r.Context(), w)
	if err != nil {
		a.log.Error("mcp_auth admin: backup failed", zap.Int64("bytes", n), zap.Error(err))
		a.audit(r.Context(), r, storage.AuditEvent{Type: audit.StoreBackup, Outcome: "failure"})
		if n == 0 {
			return adminError(http.StatusInternalServerError, "backup failed")
		}
		// Headers are sent: the client sees a short copy, which its check rejects.
		return nil
	}
	a.audit(r.Context(), r, storage.AuditEvent{Type: audit.StoreBackup, Detail: map[string]string{"bytes": strconv.FormatInt(n, 10)}})
	return nil
}
