package adminapi

import (
	"context"
	"io"
	"net/http"
	"strconv"

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
func (h *Handler) serveBackup(w http.ResponseWriter, r *http.Request) error {
	if err := allow(r, http.MethodGet); err != nil {
		return err
	}
	b, ok := h.store.(backuper)
	if !ok {
		return Errorf(http.StatusConflict, "backup copies the bbolt store; back up PostgreSQL with pg_dump")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="mcpauth.db"`)
	w.Header().Set("Cache-Control", "no-store")
	// No operation timeout: a large file may take longer than an API call.
	n, err := b.Backup(r.Context(), w)
	if err != nil {
		h.log.Error("mcp_auth admin: backup failed", "bytes", n, "error", err)
		h.audit(r.Context(), r, storage.AuditEvent{Type: audit.StoreBackup, Outcome: "failure"})
		if n == 0 {
			return Errorf(http.StatusInternalServerError, "backup failed")
		}
		// Headers are sent: the client sees a short copy, which its check rejects.
		return nil
	}
	h.audit(r.Context(), r, storage.AuditEvent{Type: audit.StoreBackup, Detail: map[string]string{"bytes": strconv.FormatInt(n, 10)}})
	return nil
}
