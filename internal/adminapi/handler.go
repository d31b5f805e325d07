package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Prefix is where the operator routes live on Caddy's admin endpoint.
const Prefix = "/mcp_auth/"

// Limits of the admin API.
const (
	maxBody       = 64 << 10
	auditDefault  = 100
	auditMax      = 1000
	operationTime = 30 * time.Second
)

// Clients is the authorization server's operator API for clients
// (*authserver.Server).
type Clients interface {
	ActiveGrants(ctx context.Context, clientID, subject string) (int, error)
	SetClientDisabled(ctx context.Context, id string, disabled bool) (storage.Client, error)
	RevokeClientGrants(ctx context.Context, id string) (int, error)
}

// Accounts is the hosted login's operator API for accounts (*idp.Login).
// Each call decides and audits its consequences.
type Accounts interface {
	CreateAccount(ctx context.Context, email, name, pw string) (storage.Account, error)
	SetAccountDisabled(ctx context.Context, accountID string, disabled bool) (int, error)
	SetPassword(ctx context.Context, accountID, pw string) (int, error)
	RevokeSessions(ctx context.Context, accountID string) (sessions, grants int, err error)
}

// Keys rotates the signing keys (*authserver.KeySet).
type Keys interface {
	Rotate(ctx context.Context) error
	RotateNow(ctx context.Context) error
}

// Config holds the handler's dependencies.
type Config struct {
	// Store is the app's storage backend: listings, the audit log, and the
	// backup when it can write a copy of itself.
	Store storage.Backend
	// Clients returns the authorization server, which the app builds on
	// first use (so this may fail: the routes that need it answer 503).
	Clients func() (Clients, error)
	// Accounts is the hosted login.
	Accounts Accounts
	// Keys is the signing key set.
	Keys Keys
	// Logger receives failures of the admin API itself (an audit write, a
	// backup). Required: there is no global fallback.
	Logger *slog.Logger
	// ActionLogger receives one line per operator action (the app's
	// logger, so the actions appear with the app's other events); default
	// Logger.
	ActionLogger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Handler serves the routes under Prefix.
type Handler struct {
	store    storage.Backend
	clients  func() (Clients, error)
	accounts Accounts
	keys     Keys
	log      *slog.Logger
	actions  *slog.Logger
	now      func() time.Time
}

// New returns the handler of cfg.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("adminapi: no store")
	case cfg.Clients == nil:
		return nil, errors.New("adminapi: no authorization server")
	case cfg.Accounts == nil:
		return nil, errors.New("adminapi: no accounts")
	case cfg.Keys == nil:
		return nil, errors.New("adminapi: no signing keys")
	case cfg.Logger == nil:
		return nil, errors.New("adminapi: no logger")
	}
	h := &Handler{store: cfg.Store, clients: cfg.Clients, accounts: cfg.Accounts, keys: cfg.Keys,
		log: cfg.Logger, actions: cfg.ActionLogger, now: cfg.Now}
	if h.actions == nil {
		h.actions = h.log
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Error is a refusal of the admin API: its HTTP status and its message
// ("mcp_auth: …"), which Caddy's admin endpoint sends as {"error": …}.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of status with the message "mcp_auth: " and the
// formatted text.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Err: fmt.Errorf("mcp_auth: "+format, args...)}
}

// route is one parsed admin path: the collection, the (unescaped) id and
// the action after it.
type route struct {
	collection, id, action string
}

func parseRoute(escapedPath string) (route, error) {
	rest, ok := strings.CutPrefix(escapedPath, Prefix)
	if !ok {
		return route{}, Errorf(http.StatusNotFound, "not found")
	}
	rest = strings.TrimSuffix(rest, "/")
	parts := strings.Split(rest, "/")
	if len(parts) > 3 {
		return route{}, Errorf(http.StatusNotFound, "not found")
	}
	var rt route
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || (i > 0 && u == "") {
			return route{}, Errorf(http.StatusBadRequest, "malformed path")
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

// Serve answers one request under Prefix. Every refusal is an *Error; nil
// means the response was written.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) error {
	rt, err := parseRoute(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), operationTime)
	defer cancel()
	switch rt.collection {
	case "clients":
		return h.serveClients(ctx, w, r, rt)
	case "users":
		return h.serveUsers(ctx, w, r, rt)
	case "audit":
		if rt.id != "" {
			return Errorf(http.StatusNotFound, "not found")
		}
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		return h.listAudit(ctx, w, r)
	case "keys":
		return h.serveKeys(ctx, w, r, rt)
	case "backup":
		if rt.id != "" {
			return Errorf(http.StatusNotFound, "not found")
		}
		return h.serveBackup(w, r)
	}
	return Errorf(http.StatusNotFound, "not found")
}

// allow refuses other methods with 405.
func allow(r *http.Request, method string) error {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return nil
	}
	return Errorf(http.StatusMethodNotAllowed, "method %s not allowed (use %s)", r.Method, method)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return Errorf(http.StatusInternalServerError, "encoding response: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// readJSON decodes a small JSON object, refusing unknown fields and
// trailing data.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return Errorf(http.StatusUnsupportedMediaType, "send application/json")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return Errorf(http.StatusBadRequest, "reading body: %v", err)
	}
	if len(body) > maxBody {
		return Errorf(http.StatusRequestEntityTooLarge, "body too large")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// The decoder's message names the field, never its value.
		return Errorf(http.StatusBadRequest, "malformed JSON body: %s", jsonErrorText(err))
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "malformed JSON body: trailing data")
	}
	return nil
}

// jsonErrorText describes a decoding error without echoing input (a
// password in a wrongly typed field must not come back in the error).
func jsonErrorText(err error) string {
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

// operatorIP is who acted, for the audit trail: the admin API caller's
// address.
func operatorIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// audit writes an operator event (never a secret). A failed write is logged;
// the action itself already happened.
func (h *Handler) audit(ctx context.Context, r *http.Request, ev storage.AuditEvent) {
	ev = h.event(r, ev)
	if err := h.store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		h.log.Error("mcp_auth admin: audit write failed", "type", ev.Type, "error", err)
	}
}

// event completes an operator event: time, address, outcome, "by".
func (h *Handler) event(r *http.Request, ev storage.AuditEvent) storage.AuditEvent {
	ev.Time = h.now()
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

func storeError(what string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return Errorf(http.StatusNotFound, "%s not found", what)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Errorf(http.StatusServiceUnavailable, "%s: storage timed out", what)
	}
	return Errorf(http.StatusInternalServerError, "%s: %v", what, err)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
