package adminapi

import (
	"context"
	"errors"
	"github.com/mcpauth/caddy-mcpauth/internal/duration"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (h *Handler) listAudit(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	aq := storage.AuditQuery{Limit: auditDefault, Type: q.Get("type"), ClientID: q.Get("client_id"), Subject: q.Get("sub")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > auditMax {
			return Errorf(http.StatusBadRequest, "limit must be an integer from 1 to %d", auditMax)
		}
		aq.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, h.now())
		if err != nil {
			return Errorf(http.StatusBadRequest, "since: use an RFC 3339 time or a duration such as 1h")
		}
		aq.Since = t
	}
	for _, s := range []string{aq.Type, aq.ClientID, aq.Subject} {
		if len(s) > 2048 {
			return Errorf(http.StatusBadRequest, "filter too long")
		}
	}
	evs, err := h.store.ListAudit(ctx, aq)
	if err != nil {
		return storeError("audit", err)
	}
	if evs == nil {
		evs = []storage.AuditEvent{}
	}
	return writeJSON(w, http.StatusOK, evs)
}

// parseSince accepts an RFC 3339 time or a duration back from now ("24h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := duration.Parse(v)
	if err != nil || d <= 0 {
		return time.Time{}, errors.New("bad since")
	}
	return now.Add(-d), nil
}
