package resourceguard

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
	"github.com/mcpauth/caddy-mcpauth/internal/resourceuri"
)

// KeySource gives verification keys. Our authorization server implements it
// in-process; RemoteKeySource implements it for any other issuer.
type KeySource interface {
	// PublicKey returns the verification key for kid and the single JWS
	// algorithm it may be used with (e.g. "ES256"); an error wrapping
	// ErrUnknownKey when kid is unknown. The key is one of *ecdsa.PublicKey,
	// ed25519.PublicKey or *rsa.PublicKey.
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, string, error)
	// Generation grows whenever the key set changes, and never decreases
	// (the verified-token cache is flushed when it grows).
	Generation() uint64
}

// ErrUnknownKey is wrapped by KeySource.PublicKey when the kid is not in the
// key set.
var ErrUnknownKey = errors.New("resourceguard: unknown key")

// RevocationChecker is optional: set it when the guard shares the store with
// the authorization server, so that revoked grants are refused at once.
type RevocationChecker interface {
	// Active reports whether tokens minted from grant grantID (JWT claim
	// "sid") for clientID are still good. An error means "unknown": the
	// request is refused with 503.
	Active(ctx context.Context, grantID, clientID string) (bool, error)
}

// RevocationFunc adapts a function to RevocationChecker.
type RevocationFunc func(ctx context.Context, grantID, clientID string) (bool, error)

// Active implements RevocationChecker.
func (f RevocationFunc) Active(ctx context.Context, grantID, clientID string) (bool, error) {
	return f(ctx, grantID, clientID)
}

// IdentityHeaders names the request headers that carry the caller's identity
// upstream. An empty name means the header is not sent. Client-sent copies of
// every configured header are always deleted.
type IdentityHeaders struct {
	Subject  string
	ClientID string
	Scopes   string // space-separated scopes of the token
	Email    string
}

// Config configures a Guard. Resource, Issuer and Keys are required.
type Config struct {
	// Resource is the exact resource URL clients use, e.g.
	// https://mcp.example.com/mcp. It is configured, never derived from Host
	// or X-Forwarded-* headers. It is the PRM "resource" and the expected aud.
	Resource string
	// Audiences, when set, replaces the accepted "aud" values (default: just
	// Resource, plus the trailing-slash variant of a bare origin). Use it for
	// issuers whose audiences are API identifiers rather than URLs.
	Audiences []string
	// Issuer is the exact expected "iss".
	Issuer string
	// AuthorizationServers is published in the PRM (default [Issuer]).
	AuthorizationServers []string
	// Keys gives the verification keys: the in-process key set of our
	// authorization server, or a RemoteKeySource.
	Keys KeySource
	// Revocation, when set, is asked on every request (cache hits included)
	// whether the token's grant is still active.
	Revocation RevocationChecker
	// RequireTyp requires the JWS header typ "at+jwt" (RFC 9068 §2.1). Set it
	// for our own issuer; other issuers often send "JWT".
	RequireTyp bool
	// Algorithms is the JWS algorithm allow-list. Default: ES256, ES384,
	// EdDSA, RS256, PS256. "none" and HMAC algorithms are always refused.
	Algorithms []string
	// Scopes are required on every request to this route.
	Scopes []string
	// ScopesSupported is published in the PRM (default: Scopes plus every
	// scope of MethodScopes). offline_access is never published.
	ScopesSupported []string
	// MethodScopes maps a JSON-RPC method ("tools/call") or a method and the
	// name of its target ("tools/call:delete_todo", "prompts/get:x",
	// "resources/read:<uri>") to the scopes it requires in addition to
	// Scopes. When set, the guard reads POST bodies (bounded by MaxBodyBytes).
	MethodScopes map[string][]string
	// ScopeHierarchy maps a broader scope to the narrower scopes it implies,
	// e.g. "todo:admin" -> ["todo:write", "todo:read"]. It is transitive.
	ScopeHierarchy map[string][]string
	// AllowedOrigins is the allow-list of exact origins ("https://app.example")
	// for requests carrying an Origin header. "*" allows every origin (which
	// disables the DNS-rebinding defence). Empty: only the resource's origin.
	AllowedOrigins []string
	// CORS makes the guard answer CORS preflights (OPTIONS with
	// Access-Control-Request-Method) from allowed origins, and add
	// Access-Control-Allow-Origin and Access-Control-Expose-Headers to the
	// responses to allowed origins, refusals included, so that browser-based
	// MCP clients can read WWW-Authenticate and Mcp-Session-Id. Credentials
	// (cookies) are never allowed. Leave it off when the upstream answers CORS
	// itself: the headers would be sent twice.
	CORS bool
	// CORSOrigins are browser origins ("https://inspector.example") that may
	// call the resource from a page on another origin. Setting it turns CORS
	// on (as CORS does) and adds these origins to the Origin check's
	// allow-list, so the two lists never disagree: a CORS origin is never
	// refused with 403, and an origin outside AllowedOrigins and CORSOrigins
	// (and, when AllowedOrigins is empty, the resource's own origin) still is.
	// "*" is refused: it would disable the DNS-rebinding defence.
	CORSOrigins []string
	// ResourceName and ResourceDocumentation are published in the PRM.
	ResourceName, ResourceDocumentation string
	// DisableRootMetadata stops serving the PRM at the root
	// /.well-known/oauth-protected-resource (use it when several guarded
	// resources share a host; the path-inserted URL is always served).
	DisableRootMetadata bool
	// Identity names the headers set upstream by Wrap.
	Identity IdentityHeaders
	// StripAllCookies removes every Cookie header from upstream requests.
	// By default only the product's own cookies (IsProductCookie: the hosted
	// login's session and CSRF cookies, the OIDC and SAML binding cookies)
	// are removed and the others are forwarded.
	StripAllCookies bool
	// MaxHeaders bounds the number of request header field lines (each value
	// of a repeated header counts): more gets 431 before any other check.
	// Default 100; negative: no limit.
	MaxHeaders int
	// MaxHeaderBytes bounds the total size of the request header fields
	// (names, values and separators): more gets 431 before any other check.
	// Default 32 KiB (room for a 16 KiB bearer token); negative: no limit.
	MaxHeaderBytes int
	// Leeway is the allowed clock skew for exp, nbf and iat: default 30s,
	// at most 2m.
	Leeway time.Duration
	// CacheSize bounds the verified-token cache (default 10000 entries; a
	// negative value disables the cache).
	CacheSize int
	// CacheMaxTTL bounds the life of a cache entry (default 5 min); an entry
	// never outlives its token.
	CacheMaxTTL time.Duration
	// MaxBodyBytes bounds the JSON-RPC body read for MethodScopes, ToolLimits,
	// MetricTools and MCP header validation (default 4 MiB); a larger body
	// is refused with 413, never partly read. Compressed bodies (gzip,
	// deflate) are bounded before and after decompression.
	MaxBodyBytes int64
	// DPoP, when set, accepts DPoP-bound tokens with proofs (RFC 9449;
	// dpop.go). Tokens with cnf are refused as bearer tokens either way.
	DPoP *DPoPConfig

	// StepUp configures the step-up answers (tool error for clients that do
	// not follow a 403, tool snapshot tracking); see StepUpConfig.
	StepUp StepUpConfig

	// DisableToolsListFilter stops the filtering of tools/list results. By
	// default, when MethodScopes name tools ("tools/call:<tool>"), a
	// tools/list result reaches the client with only the tools its token
	// may call.
	DisableToolsListFilter bool
	// MaxToolsListBytes bounds the tools/list result (JSON body or one SSE
	// event) held in memory to be filtered (default 8 MiB). A larger one is
	// refused: a JSON answer becomes 502 with a JSON-RPC error, an SSE stream
	// ends with a JSON-RPC error event.
	MaxToolsListBytes int64
	// ToolsListed, when set, receives the tools (name, title, description)
	// of a tools/list result the guard filtered, at most once per
	// ToolsListedEvery (default a minute): the consent page describes the
	// tools with them (toolcatalog.go). It must not keep the slice.
	ToolsListed      func([]ListedTool)
	ToolsListedEvery time.Duration
	// ToolLimits are rate limits per (subject, tool) of tools/call. A limit
	// whose Tool is "*" applies to each tool that has no limit of its own.
	ToolLimits []ToolLimit
	// MetricTools are tool names reported as themselves by ToolLabel (with
	// those of MethodScopes and ToolLimits); any other tool is "other".
	MetricTools []string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives refusals at debug level and infrastructure failures at
	// warn/error. Tokens are never logged.
	Logger *slog.Logger
}

// Principal is the verified caller. It is shared with the cache: treat it,
// its Scopes and its Claims as read-only.
type Principal struct {
	Subject  string
	ClientID string
	Email    string
	// Scopes are the scopes the token carries.
	Scopes []string
	// Audience is the token's aud.
	Audience []string
	// GrantID is the "sid" claim (the grant of our authorization server).
	GrantID string
	// TokenID is the "jti" claim.
	TokenID string
	Expiry  time.Time
	// Claims are all the token's claims as decoded JSON.
	Claims map[string]any
}

// Guard protects one resource. It is safe for concurrent use.
type Guard struct {
	resource  string
	issuer    string
	audiences []string
	// normAudiences are the audiences derived from Resource in
	// resourceuri's canonical form (the form the authorization server
	// issues); nil when Audiences is configured.
	normAudiences []string
	keys          KeySource
	revocation    RevocationChecker
	// scopeSets shares expanded scope sets among tokens with the same
	// scope claim (verify.go, scopeSet); scopeSetCount bounds it.
	scopeSets     sync.Map
	scopeSetCount atomic.Int32
	requireTyp    bool
	algs          map[string]bool
	baseScopes    []string
	methodScope   map[string][]string
	implied       map[string][]string // transitive closure of ScopeHierarchy
	identity      IdentityHeaders
	stripAll      bool
	maxHeaders    int
	maxHdrBytes   int
	leeway        time.Duration
	cacheMaxTTL   time.Duration
	maxBody       int64
	now           func() time.Time
	log           *slog.Logger
	cache         *tokenCache
	dpop          *dpopGuard // nil: DPoP off (dpop.go)
	stepUp        stepUp
	// readsBody: the policy depends on the method or tool.
	readsBody    bool
	tools        *ToolPolicy
	filterTools  bool
	maxListBytes int64
	limits       *toolLimiter
	toolLabels   map[string]bool
	catalog      *toolCatalog // nil: no ToolsListed

	// origins
	ownOrigin string
	origins   map[string]bool
	anyOrigin bool
	cors      bool
	// corsOrigins, when set (Config.CORSOrigins), are the only origins that
	// get CORS; otherwise (Config.CORS) every allowed origin does.
	corsOrigins map[string]bool

	// metadata
	metadataURL  string
	metadataPath string // path-inserted
	rootPath     string // "" when disabled
	metadataJSON []byte

	noTokenHeader string // precomputed challenge for the commonest refusal
}

const (
	defaultLeeway      = 30 * time.Second
	maxLeeway          = 2 * time.Minute
	defaultCacheSize   = 10000
	defaultCacheMaxTTL = 5 * time.Minute
	defaultMaxBody     = 4 << 20
	defaultMaxListBody = 8 << 20
)

// New builds a Guard. It refuses to build without Resource, Issuer and a key
// source, and checks every option.
func New(cfg Config) (*Guard, error) {
	if cfg.Resource == "" {
		return nil, errors.New("resourceguard: resource is required")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("resourceguard: issuer is required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("resourceguard: a key source is required")
	}
	res, err := parseResource(cfg.Resource)
	if err != nil {
		return nil, err
	}
	if err := checkURLString("issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	g := &Guard{
		resource:    cfg.Resource,
		issuer:      cfg.Issuer,
		keys:        cfg.Keys,
		revocation:  cfg.Revocation,
		requireTyp:  cfg.RequireTyp,
		cors:        cfg.CORS || len(cfg.CORSOrigins) > 0,
		identity:    cfg.Identity,
		stripAll:    cfg.StripAllCookies,
		maxHeaders:  cfg.MaxHeaders,
		maxHdrBytes: cfg.MaxHeaderBytes,
		leeway:      cfg.Leeway,
		cacheMaxTTL: cfg.CacheMaxTTL,
		maxBody:     cfg.MaxBodyBytes,
		now:         cfg.Now,
		log:         cfg.Logger,
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case g.leeway == 0:
		g.leeway = defaultLeeway
	case g.leeway < 0 || g.leeway > maxLeeway:
		return nil, fmt.Errorf("resourceguard: leeway %s out of range [0, %s]", g.leeway, maxLeeway)
	}
	if g.cacheMaxTTL == 0 {
		g.cacheMaxTTL = defaultCacheMaxTTL
	} else if g.cacheMaxTTL < 0 {
		return nil, errors.New("resourceguard: negative cache max TTL")
	}
	if g.maxHeaders == 0 {
		g.maxHeaders = defaultMaxHeaders
	}
	if g.maxHdrBytes == 0 {
		g.maxHdrBytes = defaultMaxHeaderBytes
	}
	if g.maxBody == 0 {
		g.maxBody = defaultMaxBody
	} else if g.maxBody < 0 {
		return nil, errors.New("resourceguard: negative max body size")
	}
	size := cfg.CacheSize
	if size == 0 {
		size = defaultCacheSize
	}
	if size > 0 {
		g.cache = newTokenCache(size, cfg.Keys.Generation())
	}

	// Audiences.
	if len(cfg.Audiences) > 0 {
		for _, a := range cfg.Audiences {
			if a == "" {
				return nil, errors.New("resourceguard: empty audience")
			}
		}
		g.audiences = slices.Clone(cfg.Audiences)
	} else {
		g.audiences = []string{cfg.Resource}
		if res.Path == "" {
			g.audiences = append(g.audiences, cfg.Resource+"/")
		} else if res.Path == "/" {
			g.audiences = append(g.audiences, strings.TrimSuffix(cfg.Resource, "/"))
		}
		// The authorization server binds tokens to the normalized resource
		// (lower-case scheme and host, no default port): accept that form
		// too, computed once here.
		if n, err := resourceuri.Normalize(cfg.Resource); err == nil {
			g.normAudiences = []string{n}
		}
	}

	// Algorithms.
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = jwsalg.Names()
	}
	g.algs = make(map[string]bool, len(algs))
	for _, a := range algs {
		if _, ok := supportedAlgs[a]; !ok {
			return nil, fmt.Errorf("resourceguard: algorithm %q is not supported (asymmetric JWS algorithms only)", a)
		}
		g.algs[a] = true
	}

	// Scopes.
	for _, s := range cfg.Scopes {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("resourceguard: invalid scope %q", s)
		}
	}
	g.baseScopes = dedupe(cfg.Scopes)
	if len(cfg.MethodScopes) > 0 {
		g.methodScope = make(map[string][]string, len(cfg.MethodScopes))
		for k, v := range cfg.MethodScopes {
			if k == "" || strings.HasPrefix(k, ":") {
				return nil, fmt.Errorf("resourceguard: invalid method scope key %q", k)
			}
			for _, s := range v {
				if !validScopeToken(s) {
					return nil, fmt.Errorf("resourceguard: invalid scope %q for %q", s, k)
				}
			}
			g.methodScope[k] = dedupe(v)
		}
	}
	g.implied, err = closeHierarchy(cfg.ScopeHierarchy)
	if err != nil {
		return nil, err
	}
	if g.stepUp, err = newStepUp(cfg.StepUp, g.methodScope); err != nil {
		return nil, err
	}

	g.tools = newToolPolicy(g.baseScopes, g.methodScope, g.implied)
	g.filterTools = g.tools.HasToolScopes() && !cfg.DisableToolsListFilter
	g.maxListBytes = cfg.MaxToolsListBytes
	if g.maxListBytes == 0 {
		g.maxListBytes = defaultMaxListBody
	} else if g.maxListBytes < 0 {
		return nil, errors.New("resourceguard: negative max tools/list size")
	}
	if cfg.ToolsListed != nil && g.filterTools {
		g.catalog = &toolCatalog{fn: cfg.ToolsListed, every: cfg.ToolsListedEvery}
		if g.catalog.every <= 0 {
			g.catalog.every = defaultListedEvery
		}
	}
	if g.limits, err = newToolLimiter(cfg.ToolLimits, g.now); err != nil {
		return nil, err
	}
	g.toolLabels = map[string]bool{}
	for _, t := range cfg.MetricTools {
		if t == "" || t == OtherTool {
			return nil, fmt.Errorf("resourceguard: invalid metric tool %q", t)
		}
		g.toolLabels[t] = true
	}
	for t := range g.tools.tools {
		g.toolLabels[t] = true
	}
	for _, l := range cfg.ToolLimits {
		if l.Tool != "*" {
			g.toolLabels[l.Tool] = true
		}
	}
	g.readsBody = len(g.methodScope) > 0 || g.limits != nil || len(cfg.MetricTools) > 0

	for _, name := range []string{cfg.Identity.Subject, cfg.Identity.ClientID, cfg.Identity.Scopes, cfg.Identity.Email} {
		if err := checkIdentityHeader(name); err != nil {
			return nil, err
		}
	}
	// Canonical once: PrepareUpstream uses the names as map keys on every
	// request.
	for _, name := range []*string{&g.identity.Subject, &g.identity.ClientID, &g.identity.Scopes, &g.identity.Email} {
		*name = textproto.CanonicalMIMEHeaderKey(*name)
	}

	// Origins.
	if err := g.setOrigins(res, cfg.AllowedOrigins, cfg.CORSOrigins); err != nil {
		return nil, err
	}

	if g.dpop, err = newDPoPGuard(cfg.DPoP, res); err != nil {
		return nil, err
	}

	// Metadata.
	if err := g.buildMetadata(res, cfg); err != nil {
		return nil, err
	}
	g.noTokenHeader = (&Challenge{Status: http.StatusUnauthorized, Scopes: g.baseScopes}).Header(g.metadataURL)
	return g, nil
}

func parseResource(s string) (*url.URL, error) {
	if err := checkURLString("resource", s); err != nil {
		return nil, err
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("resourceguard: resource: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("resourceguard: resource %q must be an http(s) URL", s)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" || u.RawQuery != "" || u.ForceQuery {
		return nil, fmt.Errorf("resourceguard: resource %q must be an absolute URL without userinfo, query or fragment", s)
	}
	if strings.Contains(u.EscapedPath(), "/./") || strings.Contains(u.EscapedPath(), "/../") ||
		strings.HasSuffix(u.EscapedPath(), "/.") || strings.HasSuffix(u.EscapedPath(), "/..") {
		return nil, fmt.Errorf("resourceguard: resource %q has dot segments", s)
	}
	return u, nil
}

// checkURLString refuses control characters, spaces and quotes in a
// configured URL: it is published in JSON and in header parameters.
func checkURLString(what, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("resourceguard: %s %q contains a forbidden character", what, s)
		}
	}
	return nil
}

// checkIdentityHeader refuses header names that are not HTTP tokens or that
// would break the request (framing, routing) or carry credentials.
func checkIdentityHeader(name string) error {
	if name == "" {
		return nil
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("resourceguard: identity header %q is not a valid header name", name)
		}
	}
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Proxy-Authorization", "Cookie", "Host", "Content-Length", "Content-Type",
		"Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Origin":
		return fmt.Errorf("resourceguard: identity header %q is reserved", name)
	}
	return nil
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Check authenticates one request: it returns the verified Principal or a
// *Challenge describing the refusal. It is Authorize without the Decision.
func (g *Guard) Check(r *http.Request) (*Principal, *Challenge) {
	d, c := g.Authorize(r)
	if c != nil {
		return nil, c
	}
	return d.Principal, nil
}

// Authorize authenticates and authorizes one request. When the policy needs
// it (MethodScopes, ToolLimits, MetricTools) or the request declares MCP
// 2026-07-28 or later, it reads a POST body, checks the Mcp-Method and
// Mcp-Name headers against it and puts back an identical body. It never
// writes to the response. On a refusal the Decision, when not nil, carries
// the Calls read (for metrics), never a Principal.
func (g *Guard) Authorize(r *http.Request) (*Decision, *Challenge) {
	d, c := g.check(r)
	if c != nil && c.Status == http.StatusUnauthorized && c.Scopes == nil {
		// Every 401 tells the client which scopes to ask for (MCP
		// authorization, "Scope Selection Strategy").
		c.Scopes = g.baseScopes
	}
	return d, c
}

func (g *Guard) check(r *http.Request) (*Decision, *Challenge) {
	if c := g.checkHeaderLimits(r); c != nil {
		return nil, c
	}
	if c := g.checkOrigin(r); c != nil {
		return nil, c
	}
	pr, c := g.accessToken(r) // Bearer, or DPoP (dpop.go)
	if c != nil {
		return nil, c
	}
	v, c := g.verified(r.Context(), pr)
	if c != nil {
		if pr.dpop {
			c.viaDPoP = true
		}
		return nil, c
	}
	proof, c := g.checkProof(r, pr, v)
	if c != nil {
		return nil, c
	}
	if g.revocation != nil {
		if c := g.checkRevocation(r.Context(), v); c != nil {
			return nil, c
		}
	}
	var one [1]rpcCall // a single message (nearly every request) is parsed into it
	calls, c := g.readCalls(r, one[:0])
	if c != nil {
		return nil, c
	}
	var d *Decision
	if calls != nil {
		d = &Decision{}
		if len(calls) == 1 {
			d.Calls = d.call[:]
		} else {
			d.Calls = make([]Call, len(calls))
		}
		for i, rc := range calls {
			d.Calls[i] = Call{Method: rc.method, Name: rc.target, Request: rc.request}
		}
	}
	need := g.requiredScopes(calls)
	if !v.hasAll(need) {
		g.log.Debug("resourceguard: insufficient scope", "sub", v.p.Subject, "client_id", v.p.ClientID, "need", need)
		return d, g.stepUpChallenge(r, &v.p, &Challenge{
			Status:      http.StatusForbidden,
			Error:       ErrorInsufficientScope,
			Description: "the token lacks a scope this operation requires",
			Scopes:      need,
			viaDPoP:     pr.dpop,
		}, calls)
	}
	if c := g.checkToolSnapshot(r, v, need, calls); c != nil {
		if pr.dpop {
			c.viaDPoP = true
		}
		return d, c
	}
	if c := g.recordProof(r.Context(), proof); c != nil {
		return nil, c
	}
	if g.limits != nil {
		if c := g.limits.allow(v.p, calls); c != nil {
			return d, c
		}
	}
	if d == nil {
		d = &Decision{}
	}
	d.principal = v.p // copy: callers may not reach into the cache entry's struct
	d.Principal = &d.principal
	d.scopes = v.scopes.set
	d.scopeLine = v.scopes.line
	if g.filterTools {
		for _, rc := range calls {
			if rc.method == "tools/list" && rc.request {
				d.listTools = true
				d.listIDs = append(d.listIDs, rc.id)
			}
		}
		if d.listTools {
			// The result is read to be filtered: it must come uncompressed.
			r.Header.Del("Accept-Encoding")
		}
	}
	return d, nil
}

func (g *Guard) checkRevocation(ctx context.Context, v *verifiedToken) *Challenge {
	if v.p.GrantID == "" {
		return invalidToken("the token has no grant id")
	}
	ok, err := g.revocation.Active(ctx, v.p.GrantID, v.p.ClientID)
	if err != nil {
		g.log.Error("resourceguard: revocation check failed", "error", err)
		return unavailable("authorization state is temporarily unavailable")
	}
	if !ok {
		g.log.Debug("resourceguard: revoked grant", "sub", v.p.Subject, "client_id", v.p.ClientID)
		return invalidToken("the token was revoked")
	}
	return nil
}

// Wrap returns middleware that serves the PRM, checks every other request,
// strips the client's Authorization header, sets identity headers and calls
// next (responses are never buffered, except a tools/list result being
// filtered: see ServeFiltered).
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.ServeMetadata(w, r) || g.ServeDiscoveryNotFound(w, r) || g.ServeCORS(w, r) {
			return
		}
		d, c := g.Authorize(r)
		if c != nil {
			g.WriteChallenge(w, c)
			return
		}
		r = r.WithContext(NewContext(r.Context(), d.Principal))
		g.PrepareAuthorized(r, d)
		g.ServeFiltered(w, r, d, next)
	})
}

// PrepareUpstream is PrepareUpstream with the guard's identity headers; with
// StripAllCookies it also removes every Cookie header.
func (g *Guard) PrepareUpstream(r *http.Request, p *Principal) {
	g.prepare(r, p, "")
}

// PrepareAuthorized is PrepareUpstream for a request that Authorize let
// through with d: the identity headers come from d.Principal, the scopes
// header from the token's scopes as verified, a value built once per scope
// claim rather than joined on every request.
func (g *Guard) PrepareAuthorized(r *http.Request, d *Decision) {
	g.prepare(r, d.Principal, d.scopeLine)
}

func (g *Guard) prepare(r *http.Request, p *Principal, scopeLine string) {
	prepareUpstream(r, p, g.identity, scopeLine) // canonical since New
	if g.stripAll {
		r.Header.Del("Cookie")
	}
}

// PrepareUpstream deletes the client's Authorization header, the product's
// own cookies (IsProductCookie) and any client-sent copies of the identity
// headers, then sets the configured ones from p. Headers whose value is
// empty are not sent.
func PrepareUpstream(r *http.Request, p *Principal, headers IdentityHeaders) {
	for _, name := range []*string{&headers.Subject, &headers.ClientID, &headers.Scopes, &headers.Email} {
		*name = textproto.CanonicalMIMEHeaderKey(*name)
	}
	prepareUpstream(r, p, headers, "")
}

// prepareUpstream is PrepareUpstream with canonical header names; a
// scopeLine not empty is the scopes header's value (p.Scopes joined).
func prepareUpstream(r *http.Request, p *Principal, headers IdentityHeaders, scopeLine string) {
	delete(r.Header, "Authorization") // the canonical key: Header.Del would canonicalize it again
	stripProductCookies(r.Header)
	if headers == (IdentityHeaders{}) {
		return // none configured (the default): nothing to build
	}
	if p == nil {
		p = &Principal{}
	}
	names := [...]string{headers.Subject, headers.ClientID, headers.Scopes, headers.Email}
	values := [...]string{p.Subject, p.ClientID, "", p.Email}
	if headers.Scopes != "" {
		values[2] = scopeLine
		if values[2] == "" {
			values[2] = strings.Join(p.Scopes, " ")
		}
	}
	var backing []string // one allocation for all the values (Header.Set makes one each)
	for i, name := range names {
		if name == "" {
			continue
		}
		delete(r.Header, name)
		if values[i] == "" {
			continue
		}
		if backing == nil {
			backing = make([]string, 0, len(values))
		}
		backing = append(backing, values[i])
		// Capacity cut to one: a later Header.Add reallocates instead of
		// writing over the next header's value.
		n := len(backing)
		r.Header[name] = backing[n-1 : n : n]
	}
}

type principalKey struct{}

// NewContext returns a context carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal that Wrap stored in the request context.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
