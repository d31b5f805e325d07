package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Endpoint paths relative to Config.PathPrefix.
const (
	pathAuthorize = "/authorize"
	pathToken     = "/token"
	pathRevoke    = "/revoke"
	pathRegister  = "/register"
	pathJWKS      = "/jwks.json"
)

// Server is the authorization server. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg         Config
	store       Store
	keys        *KeySet
	ownKeys     bool
	origin      string // scheme://host of the issuer
	tokenLimits *abuse.Limiter
	activeCache activeCache
	metadata    map[string]any
	metaJSON    []byte
	routes      map[string]http.Handler
	issuerPath  string       // the issuer's path without a trailing "/" ("" at the root)
	notFound    http.Handler // JSON 404 of owned discovery paths, with CORS

	audit       *audit.Writer
	ownAudit    bool
	refusals    *abuse.Aggregator // aggregated audit of refusals
	ownRefusals bool
	touched     sync.Map      // client id -> time.Time of the last TouchClient
	secretSem   chan struct{} // bounds concurrent client secret verifications
	// remoteKeys caches the JWK sets of private_key_jwt clients (nil
	// without a JWKSFetcher).
	remoteKeys *RemoteKeys
	// issuerKeys are the key sources of the trusted issuers (enterprise
	// IdPs, workload issuers), by issuer (issuerkeys.go).
	issuerKeys map[string]KeySource
	// workloadClients are the owned clients that authenticate with
	// workload tokens only.
	workloadClients map[string]bool

	// dpop is the DPoP setup (nil when off; dpop.go).
	dpop *dpopState
	// listed holds, by resource, the tools its guard last saw the
	// upstream list (map[string]UpstreamTool; tools.go).
	listed sync.Map

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New validates cfg, seeds the owned clients and builds the server. When
// cfg.Keys is nil it loads (or creates) the signing keys from the store and
// runs their rotation loop until Close.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Issuer) // validated
	s := &Server{cfg: cfg, store: cfg.Store, origin: u.Scheme + "://" + u.Host,
		secretSem: make(chan struct{}, maxSecretVerifications)}

	if cfg.JWKSFetcher != nil {
		rk, err := NewRemoteKeys(RemoteKeysConfig{Fetcher: cfg.JWKSFetcher, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		s.remoteKeys = rk
	}
	if err := s.buildIssuerKeys(); err != nil {
		return nil, err
	}
	if err := s.seedClients(ctx, cfg.Clients); err != nil {
		return nil, err
	}
	if err := s.checkTrustedClients(); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.startIssuerKeys(runCtx); err != nil {
		s.Close()
		return nil, err
	}
	s.keys = cfg.Keys
	if s.keys != nil {
		s.keys.publishAtLeast(cfg.keyPublishFor())
	} else {
		kc := cfg.KeyConfig
		if kc.PublishFor <= 0 {
			kc.PublishFor = cfg.keyPublishFor()
		}
		if kc.Now == nil {
			kc.Now = cfg.Now
		}
		if kc.Logger == nil {
			kc.Logger = cfg.Logger
		}
		ks, err := NewKeySet(ctx, cfg.Store, kc)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("authserver: signing keys: %w", err)
		}
		s.keys, s.ownKeys = ks, true
		s.wg.Add(1)
		go func() { defer s.wg.Done(); ks.Run(runCtx) }()
	}
	s.audit = cfg.Audit
	if s.audit == nil {
		s.audit = audit.NewWriter(audit.Config{Store: cfg.Store, Logger: cfg.Logger})
		s.audit.Start()
		s.ownAudit = true
	}
	s.refusals = cfg.Refusals
	if s.refusals == nil {
		s.refusals = abuse.NewAggregator(abuse.AggregatorConfig{Store: cfg.Store, Now: cfg.Now, Logger: cfg.Logger})
		s.ownRefusals = true
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.refusals.Run(runCtx, 30*time.Second) }()
	}

	reg := ""
	if cfg.Registration != nil {
		reg = s.endpoint(pathRegister)
	}
	s.metadata = BuildMetadata(MetadataInput{
		Issuer:                cfg.Issuer,
		AuthorizationEndpoint: s.endpoint(pathAuthorize),
		TokenEndpoint:         s.endpoint(pathToken),
		RevocationEndpoint:    s.endpoint(pathRevoke),
		RegistrationEndpoint:  reg,
		JWKSURI:               s.endpoint(pathJWKS),
		EndSessionEndpoint:    cfg.EndSessionEndpoint,
		ScopesSupported:       cfg.Scopes,
		CIMD:                  cfg.ClientResolver != nil,
		ServiceDocumentation:  cfg.ServiceDocumentation,
		ClientCredentials:     s.servesClientCredentials(),
		IDJAG:                 len(cfg.EnterpriseIdPs) > 0,
	})
	if err := s.initDPoP(); err != nil {
		s.Close()
		return nil, err
	}
	if s.metaJSON, err = json.Marshal(s.metadata); err != nil {
		s.Close()
		return nil, fmt.Errorf("authserver: metadata: %w", err)
	}

	cors := cfg.CORS
	meta := cors.Wrap(http.HandlerFunc(s.serveMetadata))
	s.routes = map[string]http.Handler{
		MetadataPath(cfg.Issuer): meta,
		s.path(pathAuthorize):    http.HandlerFunc(s.serveAuthorize), // never CORS
		s.path(PathStepUp):       http.HandlerFunc(s.serveStepUp),    // never CORS
		s.path(pathToken):        cors.Wrap(s.limitPerIP(http.HandlerFunc(s.serveToken))),
		s.path(pathRevoke):       cors.Wrap(s.limitPerIP(http.HandlerFunc(s.serveRevoke))),
		s.path(pathJWKS):         cors.Wrap(JWKSHandler(s.keys)),
	}
	if u.Path != "" && u.Path != "/" {
		// Also the OIDC-style appended form ({issuer}/.well-known/...), which
		// some clients still build; same document.
		s.routes[strings.TrimSuffix(u.Path, "/")+"/.well-known/oauth-authorization-server"] = meta
	}
	if cfg.Registration != nil {
		s.routes[s.path(pathRegister)] = cors.Wrap(cfg.Registration)
	} else {
		// Some clients POST to /register whatever the metadata says (Claude
		// uses the origin's /register): an OAuth error that says why, never
		// an empty 200 from the handlers behind.
		s.routes[s.path(pathRegister)] = cors.Wrap(http.HandlerFunc(s.serveRegistrationOff))
	}
	s.issuerPath = strings.TrimSuffix(u.Path, "/")
	s.notFound = cors.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	}))
	return s, nil
}

// serveRegistrationOff answers /register when Dynamic Client Registration
// is off: 403 access_denied with the reason's plain words, logged and
// audited as a refused registration. Nothing is stored.
func (s *Server) serveRegistrationOff(w http.ResponseWriter, r *http.Request) {
	e := (&oauth.Error{Code: oauth.CodeAccessDenied, Status: http.StatusForbidden}).Plain(oauth.ReasonRegistrationDisabled, "")
	s.refused(r, audit.ClientRegisterRefuse, "", e)
	WriteError(w, r, e)
}

// path is an endpoint's path on the issuer's origin.
func (s *Server) path(p string) string { return s.cfg.PathPrefix + p }

// endpoint is an endpoint's absolute URL.
func (s *Server) endpoint(p string) string { return s.origin + s.path(p) }

// Handles reports whether r's path is one of the server's endpoints or
// well-known documents, or a discovery path that the server owns
// (OwnsDiscovery) and answers with a JSON 404.
func (s *Server) Handles(r *http.Request) bool {
	_, ok := s.routes[r.URL.Path]
	return ok || s.OwnsDiscovery(r.URL.Path)
}

// Well-known names of authorization server discovery.
const (
	wellKnownOIDC = "/.well-known/openid-configuration"
)

// OwnsDiscovery reports whether path is an authorization server discovery
// URL on the issuer's origin (requirement 28): /.well-known/oauth-
// authorization-server and /.well-known/openid-configuration, alone or
// followed by any path (RFC 8414 §3.1 path insertion, for this issuer or a
// client's guess, such as the MCP path), and the OIDC appended form of the
// issuer's own path ({issuer}/.well-known/openid-configuration). The metadata
// is served at MetadataPath(issuer) (and the appended form of an issuer with
// a path); every other one of these paths answers a JSON 404
// {"error":"not_found"}. This server issues no ID tokens, so the OpenID
// spellings are always 404s (see the package doc).
func (s *Server) OwnsDiscovery(path string) bool {
	for _, wk := range []string{WellKnownAuthorizationServer, wellKnownOIDC} {
		// wk alone or followed by a path (no wk+"/": this runs per request).
		if strings.HasPrefix(path, wk) && (len(path) == len(wk) || path[len(wk)] == '/') {
			return true
		}
	}
	return s.issuerPath != "" && path == s.issuerPath+wellKnownOIDC
}

// ServeHTTP serves every endpoint of the authorization server; other paths
// get a JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := s.routes[r.URL.Path]
	if !ok && s.OwnsDiscovery(r.URL.Path) {
		s.notFound.ServeHTTP(w, r)
		return
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "no such endpoint"})
		return
	}
	h.ServeHTTP(w, r)
}

// Keys returns the signing key set (the guard's in-process key source).
func (s *Server) Keys() *KeySet { return s.keys }

// Metadata returns the RFC 8414 metadata document.
func (s *Server) Metadata() map[string]any {
	out := make(map[string]any, len(s.metadata))
	for k, v := range s.metadata {
		out[k] = v
	}
	return out
}

// serveMetadata writes the metadata document (GET, HEAD).
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		WriteError(w, r, &oauth.Error{Code: "invalid_request", Description: "method not allowed", Status: http.StatusMethodNotAllowed})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(s.metaJSON)
	}
}

// RevokeClient ends every grant of a client now and forgets its remembered
// consents. It returns the number of grants revoked.
func (s *Server) RevokeClient(ctx context.Context, clientID string) (int, error) {
	n, err := s.store.RevokeClientGrants(ctx, clientID, "client_revoked", s.cfg.Now())
	if err != nil {
		return n, fmt.Errorf("authserver: revoke client: %w", err)
	}
	if _, err := s.store.DeleteClientConsents(ctx, clientID); err != nil {
		return n, fmt.Errorf("authserver: revoke client consents: %w", err)
	}
	s.record(ctx, nil, storage.AuditEvent{Type: audit.ClientRevoked, ClientID: clientID, Outcome: "success",
		Detail: map[string]string{"grants": fmt.Sprint(n)}})
	return n, nil
}

// RevokeSubject ends every grant of a user now (requirement 10: a password
// change or an operator action revokes the user's refresh tokens; the guard
// refuses their access tokens through "sid"). reason is recorded on the
// grants ("password_changed", "account_disabled", ...).
func (s *Server) RevokeSubject(ctx context.Context, subject, reason string) (int, error) {
	if subject == "" {
		return 0, errors.New("authserver: revoke subject: empty subject")
	}
	n, err := s.store.RevokeSubjectGrants(ctx, subject, reason, s.cfg.Now())
	if err != nil {
		return n, fmt.Errorf("authserver: revoke subject: %w", err)
	}
	s.record(ctx, nil, storage.AuditEvent{Type: audit.SubjectRevoked, Subject: subject, Outcome: "success",
		Detail: map[string]string{"grants": fmt.Sprint(n), "reason": reason}})
	return n, nil
}

// Close stops the background work (key rotation when New built the key set,
// the audit writer it made) and flushes pending audit events. It does not close the
// store.
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		if s.audit != nil && s.ownAudit {
			s.audit.Close()
		}
		s.wg.Wait()
	})
	return nil
}

// --- helpers shared by the endpoints ---

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authserver: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashToken is the SHA-256 under which codes and refresh tokens are stored.
func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func (s *Server) clientIP(r *http.Request) string {
	if r == nil {
		return ""
	}
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// emit records an audit event (never a secret) through the batched writer
// and calls OnEvent. Security decisions use withAudit or record instead.
func (s *Server) emit(ctx context.Context, r *http.Request, ev storage.AuditEvent) {
	ev = s.event(r, ev)
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
	s.audit.Add(ctx, ev)
}

// event completes an audit event: its time and the client's address.
func (s *Server) event(r *http.Request, ev storage.AuditEvent) storage.AuditEvent {
	if ev.Time.IsZero() {
		ev.Time = s.cfg.Now()
	}
	if ev.IP == "" {
		ev.IP = s.clientIP(r)
	}
	return ev
}

// withAudit returns a ctx whose next audited write (storage.WithTxAudit)
// records the events f builds in its own transaction, and a function that
// passes them to OnEvent once the write has returned.
func (s *Server) withAudit(ctx context.Context, r *http.Request, f func(outcome error, g *storage.Grant) []storage.AuditEvent) (context.Context, func()) {
	var written []storage.AuditEvent
	ctx = storage.WithTxAudit(ctx, func(outcome error, g *storage.Grant) []storage.AuditEvent {
		written = written[:0]
		for _, ev := range f(outcome, g) {
			written = append(written, s.event(r, ev))
		}
		return written
	})
	return ctx, func() {
		if s.cfg.OnEvent != nil {
			for _, ev := range written {
				s.cfg.OnEvent(ev)
			}
		}
	}
}

// record writes a security event before the response that acknowledges
// it (no state change carries it), and calls OnEvent.
func (s *Server) record(ctx context.Context, r *http.Request, ev storage.AuditEvent) {
	ev = s.event(r, ev)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.AppendAudit(wctx, ev); err != nil {
		s.cfg.Logger.Error("authserver: audit write failed", "type", ev.Type, "client_id", ev.ClientID, "error", err)
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// touchClient records the use of a DCR or CIMD client at most once an hour
// (stale-client cleanup); owned clients are not touched.
func (s *Server) touchClient(ctx context.Context, c storage.Client) {
	if c.Kind == storage.ClientOwned {
		return
	}
	now := s.cfg.Now()
	if v, ok := s.touched.Load(c.ID); ok && now.Sub(v.(time.Time)) < time.Hour {
		return
	}
	s.touched.Store(c.ID, now)
	if err := s.store.TouchClient(ctx, c.ID, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.cfg.Logger.Warn("authserver: touch client", "client_id", c.ID, "error", err)
	}
}
