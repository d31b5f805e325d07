package adminapi

import (
	"context"
	"github.com/mcpauth/caddy-mcpauth/internal/adminwire"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func viewClient(c storage.Client) adminwire.ClientView {
	return adminwire.ClientView{
		ID: c.ID, Kind: string(c.Kind), Name: c.Name,
		RedirectURIs: nonNil(c.RedirectURIs), GrantTypes: c.GrantTypes,
		Scopes: c.Scopes, DefaultScopes: c.DefaultScopes, DefaultAudience: c.DefaultAudience,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		Confidential:            c.SecretHash != "",
		SkipConsent:             c.SkipConsent, Disabled: c.Disabled,
		LogoURI: c.LogoURI, ClientURI: c.ClientURI, SoftwareID: c.SoftwareID,
		RegisteredFrom: c.RegisteredFrom,
		CreatedAt:      c.CreatedAt, UpdatedAt: c.UpdatedAt, LastUsedAt: c.LastUsedAt,
	}
}

func (h *Handler) serveClients(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) error {
	st := h.store
	switch {
	case rt.id == "":
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		cs, err := st.ListClients(ctx)
		if err != nil {
			return storeError("clients", err)
		}
		slices.SortFunc(cs, func(x, y storage.Client) int { return strings.Compare(x.ID, y.ID) })
		out := make([]adminwire.ClientView, 0, len(cs))
		for _, c := range cs {
			out = append(out, viewClient(c))
		}
		return writeJSON(w, http.StatusOK, out)
	case rt.action == "":
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		c, err := st.GetClient(ctx, rt.id)
		if err != nil {
			return storeError("client", err)
		}
		srv, err := h.clients()
		if err != nil {
			return Errorf(http.StatusServiceUnavailable, "authorization server unavailable: %v", err)
		}
		v := viewClient(c)
		n, err := srv.ActiveGrants(ctx, c.ID, "")
		if err != nil {
			return storeError("grants", err)
		}
		v.ActiveGrants = &n
		return writeJSON(w, http.StatusOK, v)
	}
	if err := allow(r, http.MethodPost); err != nil {
		return err
	}
	srv, err := h.clients()
	if err != nil {
		return Errorf(http.StatusServiceUnavailable, "authorization server unavailable: %v", err)
	}
	switch rt.action {
	case "disable", "enable":
		// The flag and its record commit together (storage.WithTxAudit); a
		// new disabled record of a CIMD client gets it right after.
		ev := h.event(r, storage.AuditEvent{Type: "client." + rt.action + "d", ClientID: rt.id})
		inTx := false
		txCtx := storage.WithTxAudit(ctx, func(error, *storage.Grant) []storage.AuditEvent {
			inTx = true
			return []storage.AuditEvent{ev}
		})
		c, err := srv.SetClientDisabled(txCtx, rt.id, rt.action == "disable")
		if err != nil {
			return storeError("client", err)
		}
		if !inTx {
			h.audit(ctx, r, ev) // a new CIMD record: written right after it
		}
		h.actions.Info("mcp_auth: client "+rt.action+"d by the operator", "client_id", rt.id)
		return writeJSON(w, http.StatusOK, viewClient(c))
	case "revoke":
		// RevokeClientGrants writes the "client.revoked" audit event itself.
		n, err := srv.RevokeClientGrants(ctx, rt.id)
		if err != nil {
			return storeError("client", err)
		}
		h.actions.Info("mcp_auth: client revoked by the operator", "client_id", rt.id, "grants", n)
		return writeJSON(w, http.StatusOK, map[string]any{"client_id": rt.id, "grants_revoked": n})
	}
	return Errorf(http.StatusNotFound, "unknown client action %q", rt.action)
}
