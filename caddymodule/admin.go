package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/idp"

	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// adminPrefix is where the operator routes live on Caddy's admin endpoint.
const adminPrefix = "/mcp_auth/"

// Limits of the admin API.
const (
	adminMaxBody       = 64 << 10
	adminAuditDefault  = 100
	adminAuditMax      = 1000
	adminOperationTime = 30 * time.Second
)

// AdminAPI serves the operator routes of the `mcp_auth` app on Caddy's admin
// endpoint (module `admin.api.mcp_auth`, loaded automatically), under
// /mcp_auth/:
//
//	GET  clients                      list clients (never a secret hash)
//	GET  clients/{id}                 one client, with its active grant count
//	POST clients/{id}/disable         refuse the client at /authorize, /token and the guard
//	POST clients/{id}/enable
//	POST clients/{id}/revoke          end every grant and remembered consent of the client now
//	GET  users                        list accounts (never a password hash)
//	POST users                        {"email","name","password"}: create a password account
//	POST users/{id}/disable           disable, end sessions and grants
//	POST users/{id}/enable
//	POST users/{id}/password          {"password"}: set it, end sessions and grants
//	POST users/{id}/revoke-sessions   end browser sessions and grants
//	GET  audit?limit=&type=&client_id=&sub=&since=
//	GET  keys                         signing keys (kid, alg, dates; never private parts)
//	POST keys/rotate                  make a new signing key active
//
// Ids are path segments: escape them (CIMD client ids are URLs). Disabling
// a CIMD client, which has no stored record, stores a disabled one: the
// guard then refuses its tokens (the token endpoint resolves CIMD clients
// from their documents). Every
// operator action writes an audit event. The admin endpoint is as trusted as
// Caddy's own /config API: keep it on localhost or a unix socket.
type AdminAPI struct {
	app    *App
	appErr error
	log    *zap.Logger
	now    func() time.Time
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_auth",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision finds the mcp_auth app of the config being loaded. A config
// without one still loads; the routes then answer 404.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	a.now = time.Now
	v, err := ctx.AppIfConfigured("mcp_auth")
	if err != nil {
		a.appErr = err
		return nil
	}
	app, ok := v.(*App)
	if !ok || app.store == nil {
		a.appErr = errors.New("mcp_auth app is not provisioned")
		return nil
	}
	a.app = app
	return nil
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func adminError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf("mcp_auth: "+format, args...)}
}

// route is one parsed admin path: the collection, the (unescaped) id and
// the action after it.
type adminRoute struct {
	collection, id, action string
}

func parseAdminRoute(escapedPath string) (adminRoute, error) {
	rest, ok := strings.CutPrefix(escapedPath, adminPrefix)
	if !ok {
		return adminRoute{}, adminError(http.StatusNotFound, "not found")
	}
	rest = strings.TrimSuffix(rest, "/")
	parts := strings.Split(rest, "/")
	if len(parts) > 3 {
		return adminRoute{}, adminError(http.StatusNotFound, "not found")
	}
	var rt adminRoute
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || (i > 0 && u == "") {
			return adminRoute{}, adminError(http.StatusBadRequest, "malformed path")
		}
		switch i {
		case 0:
			rt.collection = u
		case 1:
			rt.id = u
		case 2:
			rt.action = u
		}
	}
	return rt, nil
}

func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if a.app == nil {
		msg := "mcp_auth app is not configured"
		if a.appErr != nil && !errors.Is(a.appErr, caddy.ErrNotConfigured) {
			msg = "mcp_auth app is unavailable"
		}
		return adminError(http.StatusNotFound, "%s", msg)
	}
	rt, err := parseAdminRoute(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminOperationTime)
	defer cancel()
	switch rt.collection {
	case "clients":
		return a.serveClients(ctx, w, r, rt)
	case "users":
		return a.serveUsers(ctx, w, r, rt)
	case "audit":
		if rt.id != "" {
			return adminError(http.StatusNotFound, "not found")
		}
		if err := adminAllow(r, http.MethodGet); err != nil {
			return err
		}
		return a.listAudit(ctx, w, r)
	case "keys":
		return a.serveKeys(ctx, w, r, rt)
	case "backup":
		if rt.id != "" {
			return adminError(http.StatusNotFound, "not found")
		}
		return a.serveBackup(w, r)
	}
	return adminError(http.StatusNotFound, "not found")
}

// allow refuses other methods with 405 and an Allow header.
func adminAllow(r *http.Request, method string) error {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return nil
	}
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("mcp_auth: method %s not allowed (use %s)", r.Method, method)}
}

func adminWriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return adminError(http.StatusInternalServerError, "encoding response: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// readJSON decodes a small JSON object, refusing unknown fields and
// trailing data.
func adminReadJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return adminError(http.StatusUnsupportedMediaType, "send application/json")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, adminMaxBody+1))
	if err != nil {
		return adminError(http.StatusBadRequest, "reading body: %v", err)
	}
	if len(body) > adminMaxBody {
		return adminError(http.StatusRequestEntityTooLarge, "body too large")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// The decoder's message names the field, never its value.
		return adminError(http.StatusBadRequest, "malformed JSON body: %s", adminJSONErrorText(err))
	}
	if dec.More() {
		return adminError(http.StatusBadRequest, "malformed JSON body: trailing data")
	}
	return nil
}

// jsonErrorText describes a decoding error without echoing input (a
// password in a wrongly typed field must not come back in the error).
func adminJSONErrorText(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.Is(err, io.EOF):
		return "empty body"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "invalid JSON"
}

// operator is who acted, for the audit trail: the admin API caller's address.
func operatorIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// audit writes an operator event (never a secret). A failed write is logged;
// the action itself already happened.
func (a *AdminAPI) audit(ctx context.Context, r *http.Request, ev storage.AuditEvent) {
	ev = a.event(r, ev)
	if err := a.app.store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		a.log.Error("mcp_auth admin: audit write failed", zap.String("type", ev.Type), zap.Error(err))
	}
}

// event completes an operator event: time, address, outcome, "by".
func (a *AdminAPI) event(r *http.Request, ev storage.AuditEvent) storage.AuditEvent {
	ev.Time = a.now()
	ev.IP = operatorIP(r)
	if ev.Outcome == "" {
		ev.Outcome = "success"
	}
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail["by"] = "admin_api"
	return ev
}

func adminStoreError(what string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return adminError(http.StatusNotFound, "%s not found", what)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return adminError(http.StatusServiceUnavailable, "%s: storage timed out", what)
	}
	return adminError(http.StatusInternalServerError, "%s: %v", what, err)
}

// --- clients ---

// clientView is a client as the operator sees it: no secret hash.
type clientView struct {
	ID                      string    `json:"id"`
	Kind                    string    `json:"kind"`
	Name                    string    `json:"name"`
	RedirectURIs            []string  `json:"redirect_uris"`
	GrantTypes              []string  `json:"grant_types,omitempty"`
	Scopes                  []string  `json:"scopes,omitempty"`
	DefaultScopes           []string  `json:"default_scopes,omitempty"`
	DefaultAudience         string    `json:"default_audience,omitempty"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	Confidential            bool      `json:"confidential"`
	SkipConsent             bool      `json:"skip_consent"`
	Disabled                bool      `json:"disabled"`
	LogoURI                 string    `json:"logo_uri,omitempty"`
	ClientURI               string    `json:"client_uri,omitempty"`
	SoftwareID              string    `json:"software_id,omitempty"`
	RegisteredFrom          string    `json:"registered_from,omitempty"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
	LastUsedAt              time.Time `json:"last_used_at,omitzero"`
	ActiveGrants            *int      `json:"active_grants,omitempty"`
}

func viewClient(c storage.Client) clientView {
	return clientView{
		ID: c.ID, Kind: string(c.Kind), Name: c.Name,
		RedirectURIs: adminNonNil(c.RedirectURIs), GrantTypes: c.GrantTypes,
		Scopes: c.Scopes, DefaultScopes: c.DefaultScopes, DefaultAudience: c.DefaultAudience,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		Confidential:            c.SecretHash != "",
		SkipConsent:             c.SkipConsent, Disabled: c.Disabled,
		LogoURI: c.LogoURI, ClientURI: c.ClientURI, SoftwareID: c.SoftwareID,
		RegisteredFrom: c.RegisteredFrom,
		CreatedAt:      c.CreatedAt, UpdatedAt: c.UpdatedAt, LastUsedAt: c.LastUsedAt,
	}
}

func adminNonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *AdminAPI) serveClients(ctx context.Context, w http.ResponseWriter, r *http.Request, rt adminRoute) error {
	st := a.app.store
	switch {
	case rt.id == "":
		if err := adminAllow(r, http.MethodGet); err != nil {
			return err
		}
		cs, err := st.ListClients(ctx)
		if err != nil {
			return adminStoreError("clients", err)
		}
		slices.SortFunc(cs, func(x, y storage.Client) int { return strings.Compare(x.ID, y.ID) })
		out := make([]clientView, 0, len(cs))
		for _, c := range cs {
			out = append(out, viewClient(c))
		}
		return adminWriteJSON(w, http.StatusOK, out)
	case rt.action == "":
		if err := adminAllow(r, http.MethodGet); err != nil {
			return err
		}
		c, err := st.GetClient(ctx, rt.id)
		if err != nil {
			return adminStoreError("client", err)
		}
		srv, err := a.app.Server()
		if err != nil {
			return adminError(http.StatusServiceUnavailable, "authorization server unavailable: %v", err)
		}
		v := viewClient(c)
		n, err := srv.ActiveGrants(ctx, c.ID, "")
		if err != nil {
			return adminStoreError("grants", err)
		}
		v.ActiveGrants = &n
		return adminWriteJSON(w, http.StatusOK, v)
	}
	if err := adminAllow(r, http.MethodPost); err != nil {
		return err
	}
	srv, err := a.app.Server()
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "authorization server unavailable: %v", err)
	}
	switch rt.action {
	case "disable", "enable":
		// The flag and its record commit together (storage.WithTxAudit); a
		// new disabled record of a CIMD client gets it right after.
		ev := a.event(r, storage.AuditEvent{Type: "client." + rt.action + "d", ClientID: rt.id})
		inTx := false
		txCtx := storage.WithTxAudit(ctx, func(error, *storage.Grant) []storage.AuditEvent {
			inTx = true
			return []storage.AuditEvent{ev}
		})
		c, err := srv.SetClientDisabled(txCtx, rt.id, rt.action == "disable")
		if err != nil {
			return adminStoreError("client", err)
		}
		if !inTx {
			a.audit(ctx, r, ev) // a new CIMD record: written right after it
		}
		a.app.logger.Info("mcp_auth: client "+rt.action+"d by the operator", zap.String("client_id", rt.id))
		return adminWriteJSON(w, http.StatusOK, viewClient(c))
	case "revoke":
		// RevokeClientGrants writes the "client.revoked" audit event itself.
		n, err := srv.RevokeClientGrants(ctx, rt.id)
		if err != nil {
			return adminStoreError("client", err)
		}
		a.app.logger.Info("mcp_auth: client revoked by the operator", zap.String("client_id", rt.id), zap.Int("grants", n))
		return adminWriteJSON(w, http.StatusOK, map[string]any{"client_id": rt.id, "grants_revoked": n})
	}
	return adminError(http.StatusNotFound, "unknown client action %q", rt.action)
}

// --- users ---

// userView is an account as the operator sees it: no password hash.
type userView struct {
	ID                string    `json:"id"`
	Email             string    `json:"email"`
	Name              string    `json:"name,omitempty"`
	EmailVerified     bool      `json:"email_verified"`
	HasPassword       bool      `json:"has_password"`
	Groups            []string  `json:"groups,omitempty"`
	Disabled          bool      `json:"disabled"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
}

func viewUser(a storage.Account) userView {
	return userView{
		ID: a.ID, Email: a.Email, Name: a.Name, EmailVerified: a.EmailVerified,
		HasPassword: a.PasswordHash != "", Groups: a.Groups, Disabled: a.Disabled,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, PasswordChangedAt: a.PasswordChangedAt,
	}
}

// passwordPolicyError maps the idp's refusals of operator input to 400.
func userInputError(err error) error {
	for _, e := range []error{password.ErrTooShort, password.ErrTooLong, password.ErrCommon, password.ErrInvalid} {
		if errors.Is(err, e) {
			return adminError(http.StatusBadRequest, "%v", e)
		}
	}
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return adminError(http.StatusConflict, "an account with that email already exists")
	case errors.Is(err, storage.ErrNotFound):
		return adminError(http.StatusNotFound, "user not found")
	case errors.Is(err, idp.ErrNotEmail):
		return adminError(http.StatusBadRequest, "not an email address")
	}
	return adminError(http.StatusInternalServerError, "%v", err)
}

func (a *AdminAPI) serveUsers(ctx context.Context, w http.ResponseWriter, r *http.Request, rt adminRoute) error {
	st := a.app.store
	login := a.app.login
	if rt.id == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			accts, err := st.ListAccounts(ctx)
			if err != nil {
				return adminStoreError("users", err)
			}
			slices.SortFunc(accts, func(x, y storage.Account) int { return strings.Compare(x.Email, y.Email) })
			out := make([]userView, 0, len(accts))
			for _, acct := range accts {
				out = append(out, viewUser(acct))
			}
			return adminWriteJSON(w, http.StatusOK, out)
		case http.MethodPost:
			var in struct {
				Email    string `json:"email"`
				Name     string `json:"name"`
				Password string `json:"password"`
			}
			if err := adminReadJSON(r, &in); err != nil {
				return err
			}
			if in.Email == "" || in.Password == "" {
				return adminError(http.StatusBadRequest, "email and password are required")
			}
			acct, err := login.CreateAccount(ctx, in.Email, in.Name, in.Password)
			if err != nil {
				return userInputError(err)
			}
			a.app.logger.Info("mcp_auth: account created by the operator", zap.String("account", acct.ID))
			return adminWriteJSON(w, http.StatusCreated, viewUser(acct))
		}
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("mcp_auth: method %s not allowed (use GET or POST)", r.Method)}
	}
	if rt.action == "" {
		if err := adminAllow(r, http.MethodGet); err != nil {
			return err
		}
		acct, err := st.GetAccount(ctx, rt.id)
		if err != nil {
			return adminStoreError("user", err)
		}
		return adminWriteJSON(w, http.StatusOK, viewUser(acct))
	}
	if err := adminAllow(r, http.MethodPost); err != nil {
		return err
	}
	switch rt.action {
	case "disable", "enable", "password", "revoke-sessions":
	default:
		return adminError(http.StatusNotFound, "unknown user action %q", rt.action)
	}
	if _, err := st.GetAccount(ctx, rt.id); err != nil {
		return adminStoreError("user", err)
	}
	resp := map[string]any{"id": rt.id}
	// Each idp call decides and audits its consequences: disabling an
	// account, setting its password or ending its sessions ends its sessions
	// and grants ("account.disabled", "account.password_changed",
	// "session.revoked", each with "subject.revoked").
	switch rt.action {
	case "disable", "enable":
		disabled := rt.action == "disable"
		n, err := login.SetAccountDisabled(ctx, rt.id, disabled)
		if err != nil {
			return userInputError(err)
		}
		if disabled {
			resp["grants_revoked"] = n
		}
		resp["disabled"] = disabled
	case "password":
		var in struct {
			Password string `json:"password"`
		}
		if err := adminReadJSON(r, &in); err != nil {
			return err
		}
		if in.Password == "" {
			return adminError(http.StatusBadRequest, "password is required")
		}
		n, err := login.SetPassword(ctx, rt.id, in.Password)
		if err != nil {
			return userInputError(err)
		}
		resp["grants_revoked"] = n
	case "revoke-sessions":
		ns, n, err := login.RevokeSessions(ctx, rt.id)
		if err != nil {
			return adminStoreError("sessions", err)
		}
		resp["sessions_revoked"], resp["grants_revoked"] = ns, n
	}
	a.app.logger.Info("mcp_auth: operator action on an account", zap.String("account", rt.id), zap.String("action", rt.action))
	return adminWriteJSON(w, http.StatusOK, resp)
}

// --- audit ---

func (a *AdminAPI) listAudit(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	aq := storage.AuditQuery{Limit: adminAuditDefault, Type: q.Get("type"), ClientID: q.Get("client_id"), Subject: q.Get("sub")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > adminAuditMax {
			return adminError(http.StatusBadRequest, "limit must be an integer from 1 to %d", adminAuditMax)
		}
		aq.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := parseAuditSince(v, a.now())
		if err != nil {
			return adminError(http.StatusBadRequest, "since: use an RFC 3339 time or a duration such as 1h")
		}
		aq.Since = t
	}
	for _, s := range []string{aq.Type, aq.ClientID, aq.Subject} {
		if len(s) > 2048 {
			return adminError(http.StatusBadRequest, "filter too long")
		}
	}
	evs, err := a.app.store.ListAudit(ctx, aq)
	if err != nil {
		return adminStoreError("audit", err)
	}
	if evs == nil {
		evs = []storage.AuditEvent{}
	}
	return adminWriteJSON(w, http.StatusOK, evs)
}

// parseSince accepts an RFC 3339 time or a duration back from now ("24h").
func parseAuditSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := caddy.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, errors.New("bad since")
	}
	return now.Add(-d), nil
}

// --- keys ---

// keyView is a signing key without its private part.
type keyView struct {
	ID        string    `json:"kid"`
	Algorithm string    `json:"alg"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	// ActivatesAt is set while the key is pre-published: published, not
	// signing yet.
	ActivatesAt  time.Time `json:"activates_at,omitzero"`
	RetiredAt    time.Time `json:"retired_at,omitzero"`
	PublishUntil time.Time `json:"publish_until,omitzero"`
}

func (a *AdminAPI) listKeys(ctx context.Context) ([]keyView, error) {
	ks, err := a.app.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	active := authserver.ActiveSigningKey(ks, now)
	out := make([]keyView, 0, len(ks))
	for _, k := range ks {
		v := keyView{ID: k.ID, Algorithm: k.Algorithm, Active: k.ID == active, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt, PublishUntil: k.PublishUntil}
		if k.Activation().After(now) {
			v.ActivatesAt = k.Activation()
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y keyView) int { return y.CreatedAt.Compare(x.CreatedAt) })
	return out, nil
}

func (a *AdminAPI) serveKeys(ctx context.Context, w http.ResponseWriter, r *http.Request, rt adminRoute) error {
	switch {
	case rt.id == "":
		if err := adminAllow(r, http.MethodGet); err != nil {
			return err
		}
		ks, err := a.listKeys(ctx)
		if err != nil {
			return adminStoreError("keys", err)
		}
		return adminWriteJSON(w, http.StatusOK, ks)
	case rt.id == "rotate" && rt.action == "":
		if err := adminAllow(r, http.MethodPost); err != nil {
			return err
		}
		before, err := a.listKeys(ctx)
		if err != nil {
			return adminStoreError("keys", err)
		}
		// ?now=true skips pre-publication (disruptive: see KeySet.RotateNow).
		rotate := a.app.keys.Rotate
		if now := r.URL.Query().Get("now"); now == "true" || now == "1" {
			rotate = a.app.keys.RotateNow
		}
		if err := rotate(ctx); err != nil {
			return adminError(http.StatusInternalServerError, "rotating the signing key: %v", err)
		}
		after, err := a.listKeys(ctx)
		if err != nil {
			return adminStoreError("keys", err)
		}
		detail := map[string]string{}
		for _, k := range before {
			if k.Active {
				detail["previous_kid"] = k.ID
			}
		}
		for _, k := range after {
			if !slices.ContainsFunc(before, func(b keyView) bool { return b.ID == k.ID }) {
				detail["kid"] = k.ID
				if !k.ActivatesAt.IsZero() {
					detail["activates_at"] = k.ActivatesAt.UTC().Format(time.RFC3339)
				}
			}
		}
		a.audit(ctx, r, storage.AuditEvent{Type: audit.KeysRotated, Detail: detail})
		a.app.logger.Info("mcp_auth: signing key rotated by the operator", zap.String("kid", detail["kid"]))
		return adminWriteJSON(w, http.StatusOK, after)
	}
	return adminError(http.StatusNotFound, "not found")
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
