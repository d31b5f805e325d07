package adminapi

import (
	"context"
	"github.com/mcpauth/caddy-mcpauth/internal/adminwire"
	"net/http"
	"slices"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (h *Handler) listKeys(ctx context.Context) ([]adminwire.KeyView, error) {
	ks, err := h.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	now := h.now()
	active := authserver.ActiveSigningKey(ks, now)
	out := make([]adminwire.KeyView, 0, len(ks))
	for _, k := range ks {
		v := adminwire.KeyView{ID: k.ID, Algorithm: k.Algorithm, Active: k.ID == active, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt, PublishUntil: k.PublishUntil}
		if k.Activation().After(now) {
			v.ActivatesAt = k.Activation()
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y adminwire.KeyView) int { return y.CreatedAt.Compare(x.CreatedAt) })
	return out, nil
}

func (h *Handler) serveKeys(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) error {
	switch {
	case rt.id == "":
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		ks, err := h.listKeys(ctx)
		if err != nil {
			return storeError("keys", err)
		}
		return writeJSON(w, http.StatusOK, ks)
	case rt.id == "rotate" && rt.action == "":
		if err := allow(r, http.MethodPost); err != nil {
			return err
		}
		before, err := h.listKeys(ctx)
		if err != nil {
			return storeError("keys", err)
		}
		// ?now=true skips pre-publication (disruptive: see KeySet.RotateNow).
		rotate := h.keys.Rotate
		if now := r.URL.Query().Get("now"); now == "true" || now == "1" {
			rotate = h.keys.RotateNow
		}
		if err := rotate(ctx); err != nil {
			return Errorf(http.StatusInternalServerError, "rotating the signing key: %v", err)
		}
		after, err := h.listKeys(ctx)
		if err != nil {
			return storeError("keys", err)
		}
		detail := map[string]string{}
		for _, k := range before {
			if k.Active {
				detail["previous_kid"] = k.ID
			}
		}
		for _, k := range after {
			if !slices.ContainsFunc(before, func(b adminwire.KeyView) bool { return b.ID == k.ID }) {
				detail["kid"] = k.ID
				if !k.ActivatesAt.IsZero() {
					detail["activates_at"] = k.ActivatesAt.UTC().Format(time.RFC3339)
				}
			}
		}
		h.audit(ctx, r, storage.AuditEvent{Type: audit.KeysRotated, Detail: detail})
		h.actions.Info("mcp_auth: signing key rotated by the operator", "kid", detail["kid"])
		return writeJSON(w, http.StatusOK, after)
	}
	return Errorf(http.StatusNotFound, "not found")
}
