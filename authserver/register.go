package authserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// RegistrationStore is what the registration endpoint needs.
type RegistrationStore interface {
	storage.Clients
	storage.Consents
	storage.Audit
}

// RegistrationConfig configures Dynamic Client Registration (RFC 7591),
// narrowed to public PKCE clients.
type RegistrationConfig struct {
	Store RegistrationStore
	// Options are the validation rules (dcr.DefaultOptions() when zero).
	Options *dcr.Options
	// RatePerIP and BurstPerIP limit registrations per requester: a client
	// IP cut to IPv4Prefix or IPv6Prefix bits (defaults: one every 6
	// minutes on average, bursts of 10).
	RatePerIP  rate.Limit
	BurstPerIP int
	// GlobalRate and GlobalBurst limit registrations from all requesters
	// together (defaults: one every 10 seconds on average, bursts of 60).
	GlobalRate  rate.Limit
	GlobalBurst int
	// MaxRequesters bounds the requesters whose budgets are remembered
	// (default 10000); past it the least recently seen is forgotten.
	MaxRequesters int
	// MaxClientsPerPrefix and MaxClients cap the stored DCR clients
	// registered from one requester prefix (default 100) and in all
	// (default 10000). Past the per-prefix cap registration is refused;
	// at the total cap the oldest client never used (no token ever issued)
	// and registered over an hour ago is deleted to make room, and only
	// when there is none is registration refused. Unused clients also
	// expire (caddymodule's maintenance).
	MaxClientsPerPrefix int
	MaxClients          int
	// IPv4Prefix and IPv6Prefix are the bits of a client IP that identify a
	// requester (defaults 32 and 64).
	IPv4Prefix int
	IPv6Prefix int
	// ClientIP returns Caddy's resolved client IP.
	ClientIP func(*http.Request) string
	// OnEvent is called for every audit event (metrics), refusals included.
	OnEvent func(storage.AuditEvent)
	// Refusals aggregates refused registrations into one stored record per
	// outcome, source prefix and minute. Nil: the handler keeps its own,
	// whose records are written when a later refusal arrives after their
	// minute.
	Refusals *abuse.Aggregator
	// SharedLimits, when set, makes the per-requester and global rate
	// limits hold across the instances sharing it (abuse.LimiterConfig.Shared);
	// nil: per instance. The stored-client caps are shared anyway.
	SharedLimits abuse.SharedBuckets
	Now          func() time.Time
	Logger       *slog.Logger
}

// Registration defaults.
const (
	DefaultRegistrationBurst     = 10
	DefaultRegistrationEvery     = 6 * time.Minute
	DefaultRegistrationGlobal    = 60
	DefaultRegistrationGlobalGap = 10 * time.Second
	DefaultMaxClientsPerPrefix   = 100
	DefaultMaxClients            = 10_000
)

// maxRegistrationBody bounds a registration request.
const maxRegistrationBody = 16 << 10

// NewRegistrationHandler returns the /register endpoint (RFC 7591 §3): it
// accepts only public clients using the authorization code with PKCE
// (token_endpoint_auth_method "none"), issues ids that never look like a CIMD
// URL, rate-limits per requester (client IP, IPv6 by /64) and in all, caps
// the stored clients per requester and in all, and audits every outcome
// (refusals aggregated).
func NewRegistrationHandler(cfg RegistrationConfig) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("authserver: registration needs a store")
	}
	if cfg.Options == nil {
		o := dcr.DefaultOptions()
		cfg.Options = &o
	}
	if cfg.RatePerIP == 0 {
		cfg.RatePerIP = rate.Every(DefaultRegistrationEvery)
	}
	if cfg.BurstPerIP <= 0 {
		cfg.BurstPerIP = DefaultRegistrationBurst
	}
	if cfg.GlobalRate == 0 {
		cfg.GlobalRate = rate.Every(DefaultRegistrationGlobalGap)
	}
	if cfg.GlobalBurst <= 0 {
		cfg.GlobalBurst = DefaultRegistrationGlobal
	}
	if cfg.MaxClientsPerPrefix <= 0 {
		cfg.MaxClientsPerPrefix = DefaultMaxClientsPerPrefix
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteHost
	}
	if cfg.Refusals == nil {
		cfg.Refusals = abuse.NewAggregator(abuse.AggregatorConfig{Store: cfg.Store, Now: cfg.Now, Logger: cfg.Logger})
	}
	prefixes := abuse.Prefixes{IPv4: cfg.IPv4Prefix, IPv6: cfg.IPv6Prefix}
	return &registration{cfg: cfg, prefixes: prefixes, limits: abuse.NewLimiter(abuse.LimiterConfig{
		Rate: cfg.RatePerIP, Burst: cfg.BurstPerIP, GlobalRate: cfg.GlobalRate, GlobalBurst: cfg.GlobalBurst,
		MaxKeys: cfg.MaxRequesters, Prefixes: prefixes, Now: cfg.Now,
		Shared: cfg.SharedLimits, SharedName: "dcr", Logger: cfg.Logger,
	})}, nil
}

type registration struct {
	cfg      RegistrationConfig
	prefixes abuse.Prefixes
	limits   *abuse.Limiter
	// mu serializes the stored-client count with the write it allows.
	mu sync.Mutex
}

func (h *registration) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		h.refuse(w, r, h.cfg.ClientIP(r), &oauth.Error{Code: oauth.CodeInvalidRequest, Description: "registration requires POST", Status: http.StatusMethodNotAllowed,
			Reason: oauth.ReasonRequestMalformed})
		return
	}
	ip := h.cfg.ClientIP(r)
	if d := h.limits.Allow(ip); !d.OK {
		desc := "too many registrations from this address; try again later"
		if d.Scope == abuse.ScopeGlobal {
			desc = "too many registrations; try again later"
		}
		h.tooMany(w, r, ip, "rate_limited", oauth.ReasonRegistrationRateLimit, d.Scope, d.RetryAfter, desc)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.refuse(w, r, ip, oauth.ErrInvalidClientMetadata("the request body must be application/json"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil {
		h.refuse(w, r, ip, oauth.ErrInvalidRequest("could not read the request body").Because(oauth.ReasonRequestMalformed))
		return
	}
	if len(body) > maxRegistrationBody {
		h.refuse(w, r, ip, oauth.ErrInvalidClientMetadata("client metadata is too large"))
		return
	}
	client, derr := dcr.ValidateRegistration(body, *h.cfg.Options)
	if derr != nil {
		h.refuse(w, r, ip, derr)
		return
	}
	now := h.cfg.Now().UTC()
	client.ID = dcr.NewClientID()
	client.Kind = storage.ClientDCR
	client.TokenEndpointAuthMethod = "none"
	client.RegisteredFrom = ip
	client.CreatedAt, client.UpdatedAt = now, now
	if client.Name == "" {
		client.Name = "Unnamed client"
	}
	if client.Fingerprint == "" {
		client.Fingerprint = oauth.Fingerprint(client)
	}
	h.mu.Lock()
	cs, err := h.cfg.Store.ListClients(r.Context())
	var scope string
	var victim *storage.Client
	if err == nil {
		scope, victim = h.overCap(cs, ip, now)
		client.Predecessors = predecessors(cs, client, victim)
	}
	if err == nil && victim != nil {
		err = h.evict(r.Context(), *victim, now)
	}
	if err == nil && scope == "" {
		err = h.cfg.Store.CreateClient(r.Context(), client)
	}
	h.mu.Unlock()
	if err != nil {
		h.cfg.Logger.Error("authserver: storing a registered client", "error", err)
		h.refuse(w, r, ip, oauth.ErrTemporarilyUnavailable("registration could not be stored").Because(oauth.ReasonStorageUnavailable))
		return
	}
	if scope != "" {
		desc := "too many clients are registered from this address; unused ones expire"
		if scope == abuse.ScopeGlobal {
			desc = "too many clients are registered; unused ones expire"
		}
		h.tooMany(w, r, ip, "client_cap", oauth.ReasonRegistrationCap, scope, time.Hour, desc)
		return
	}
	h.audit(r.Context(), storage.AuditEvent{Type: audit.ClientRegistered, Outcome: "success", ClientID: client.ID, IP: ip,
		Detail: map[string]string{"client_name": truncate(client.Name, 80), "redirect_uris": strconv.Itoa(len(client.RedirectURIs))}})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusCreated, dcr.RegistrationResponse(client, now))
}

// refuse answers a refused registration (logged and audited, aggregated,
// like every refusal) as a JSON OAuth error (RFC 7591 §3.2.2).
func (h *registration) refuse(w http.ResponseWriter, r *http.Request, ip string, e *oauth.Error) {
	reason := oauth.ReasonOf(e)
	h.log(r, e.Code, reason, ip)
	h.refused(r.Context(), storage.AuditEvent{Type: audit.ClientRegisterRefuse, Outcome: e.Code, IP: ip,
		Detail: map[string]string{"reason": string(reason)}})
	WriteError(w, r, e)
}

// log records a refusal once, with its reason (never the request body).
func (h *registration) log(r *http.Request, code string, reason oauth.Reason, ip string) {
	h.cfg.Logger.Log(r.Context(), reasonLogLevel(reason), "authserver: refused", "type", audit.ClientRegisterRefuse, "error", code, "reason", string(reason), "ip", ip)
}

// tooMany answers 429 temporarily_unavailable with a Retry-After.
func (h *registration) tooMany(w http.ResponseWriter, r *http.Request, ip, outcome string, reason oauth.Reason, scope string, after time.Duration, desc string) {
	h.log(r, oauth.CodeTemporarilyUnavailable, reason, ip)
	h.refused(r.Context(), storage.AuditEvent{Type: audit.ClientRegisterRefuse, Outcome: outcome, IP: ip,
		Detail: map[string]string{"scope": scope, "reason": string(reason)}})
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((after+time.Second-1)/time.Second))))
	WriteError(w, r, &oauth.Error{Code: "temporarily_unavailable", Description: desc, Status: http.StatusTooManyRequests, Reason: reason})
}

// evictUnusedAfter is how old a never-used client must be to make room at
// the total cap: a real client finishes its first authorization in minutes.
const evictUnusedAfter = time.Hour

// maxPredecessors bounds the earlier registrations a DCR client may reuse
// a consent from.
const maxPredecessors = 8

// predecessors lists the earlier DCR clients whose remembered consents c
// may reuse (newest first, at most maxPredecessors): registered with the
// same metadata fingerprint (name and redirect URIs) and software id, not
// disabled, not about to be evicted, and only when every redirect URI is
// https on a public name (dcr.PublicWebRedirects): any local program can
// register a loopback or private-use redirect.
func predecessors(cs []storage.Client, c storage.Client, victim *storage.Client) []string {
	if c.Kind != storage.ClientDCR || c.Fingerprint == "" || !dcr.PublicWebRedirects(c.RedirectURIs) {
		return nil
	}
	var same []storage.Client
	for _, p := range cs {
		if p.Kind == storage.ClientDCR && !p.Disabled && p.ID != c.ID && p.Fingerprint == c.Fingerprint &&
			p.SoftwareID == c.SoftwareID && (victim == nil || p.ID != victim.ID) {
			same = append(same, p)
		}
	}
	sort.SliceStable(same, func(i, j int) bool { return same[i].CreatedAt.After(same[j].CreatedAt) })
	var ids []string
	for _, p := range same {
		if len(ids) == maxPredecessors {
			break
		}
		ids = append(ids, p.ID)
	}
	return ids
}

// overCap reports whether storing one more client registered from ip
// would pass the per-prefix cap (ScopeRequester) or the total cap
// (ScopeGlobal); at the total cap it returns the client to evict instead
// when there is one. It reads the client list: registrations are rare (the
// rate limits above bound them), so no counter has to be kept in step
// with expiry, other instances and the admin API.
func (h *registration) overCap(cs []storage.Client, ip string, now time.Time) (string, *storage.Client) {
	key := h.prefixes.Key(ip)
	total, mine := 0, 0
	var victim *storage.Client
	for i, c := range cs {
		if c.Kind != storage.ClientDCR {
			continue
		}
		total++
		if h.prefixes.Key(c.RegisteredFrom) == key {
			mine++
		}
		if c.LastUsedAt.IsZero() && now.Sub(c.CreatedAt) > evictUnusedAfter &&
			(victim == nil || c.CreatedAt.Before(victim.CreatedAt) || c.CreatedAt.Equal(victim.CreatedAt) && c.ID < victim.ID) {
			victim = &cs[i]
		}
	}
	switch {
	case mine >= h.cfg.MaxClientsPerPrefix:
		return abuse.ScopeRequester, nil
	case total >= h.cfg.MaxClients && victim != nil:
		return "", victim
	case total >= h.cfg.MaxClients:
		return abuse.ScopeGlobal, nil
	}
	return "", nil
}

// evict deletes a never-used client (and any consent given to it) to make
// room at the total cap, and audits it.
func (h *registration) evict(ctx context.Context, c storage.Client, now time.Time) error {
	if _, err := h.cfg.Store.DeleteClientConsents(ctx, c.ID); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteClient(ctx, c.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	h.audit(ctx, storage.AuditEvent{Type: audit.ClientEvicted, Outcome: "success", ClientID: c.ID,
		Detail: map[string]string{"reason": "max_clients", "registered": c.CreatedAt.UTC().Format(time.RFC3339)}})
	return nil
}

// refused counts an unauthenticated refusal: OnEvent sees each one, the
// audit log one aggregated record per outcome, source prefix and minute.
func (h *registration) refused(ctx context.Context, ev storage.AuditEvent) {
	ev.Time = h.cfg.Now().UTC()
	if h.cfg.OnEvent != nil {
		h.cfg.OnEvent(ev)
	}
	h.cfg.Refusals.Add(ctx, ev)
}

func (h *registration) audit(ctx context.Context, ev storage.AuditEvent) {
	ev.Time = h.cfg.Now().UTC()
	if err := h.cfg.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		h.cfg.Logger.Warn("authserver: audit write failed", "type", ev.Type, "error", err)
	}
	if h.cfg.OnEvent != nil {
		h.cfg.OnEvent(ev)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
