package authserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// RegistrationStore is what the registration endpoint needs.
type RegistrationStore interface {
	storage.Clients
	storage.Audit
}

// RegistrationConfig configures Dynamic Client Registration (RFC 7591),
// narrowed to public PKCE clients.
type RegistrationConfig struct {
	Store RegistrationStore
	// Options are the validation rules (dcr.DefaultOptions() when zero).
	Options *dcr.Options
	// RatePerIP and BurstPerIP limit registrations per client IP
	// (defaults: one every 6 minutes on average, bursts of 10).
	RatePerIP  rate.Limit
	BurstPerIP int
	// ClientIP returns Caddy's resolved client IP.
	ClientIP func(*http.Request) string
	// OnEvent is called for every audit event (metrics).
	OnEvent func(storage.AuditEvent)
	Now     func() time.Time
	Logger  *slog.Logger
}

// maxRegistrationBody bounds a registration request.
const maxRegistrationBody = 16 << 10

// NewRegistrationHandler returns the /register endpoint (RFC 7591 §3): it
// accepts only public clients using the authorization code with PKCE
// (token_endpoint_auth_method "none"), issues ids that never look like a CIMD
// URL, rate-limits per client IP and audits every outcome.
func NewRegistrationHandler(cfg RegistrationConfig) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("authserver: registration needs a store")
	}
	if cfg.Options == nil {
		o := dcr.DefaultOptions()
		cfg.Options = &o
	}
	if cfg.RatePerIP == 0 {
		cfg.RatePerIP = rate.Every(6 * time.Minute)
	}
	if cfg.BurstPerIP == 0 {
		cfg.BurstPerIP = 10
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
	return &registration{cfg: cfg, limits: newIPLimiter(cfg.RatePerIP, cfg.BurstPerIP, cfg.Now)}, nil
}

type registration struct {
	cfg    RegistrationConfig
	limits *ipLimiter
}

func (h *registration) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		WriteError(w, r, &Error{Code: CodeInvalidRequest, Description: "registration requires POST", Status: http.StatusMethodNotAllowed})
		return
	}
	ip := h.cfg.ClientIP(r)
	if !h.limits.allow(ip) {
		w.Header().Set("Retry-After", strconv.Itoa(int(h.limits.retryAfter().Seconds())+1))
		h.audit(r.Context(), storage.AuditEvent{Type: "client.register_refused", Outcome: "rate_limited", IP: ip})
		WriteError(w, r, &Error{Code: "temporarily_unavailable", Description: "too many registrations from this address; try again later", Status: http.StatusTooManyRequests})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.refuse(w, r, ip, &dcr.Error{Code: dcr.CodeInvalidClientMetadata, Description: "the request body must be application/json"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil {
		WriteError(w, r, ErrInvalidRequest("could not read the request body"))
		return
	}
	if len(body) > maxRegistrationBody {
		h.refuse(w, r, ip, &dcr.Error{Code: dcr.CodeInvalidClientMetadata, Description: "client metadata is too large"})
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
		client.Fingerprint = dcr.Fingerprint(client.Name, client.RedirectURIs)
	}
	if err := h.cfg.Store.CreateClient(r.Context(), client); err != nil {
		h.cfg.Logger.Error("authserver: storing a registered client", "error", err)
		WriteError(w, r, ErrTemporarilyUnavailable("registration could not be stored"))
		return
	}
	h.audit(r.Context(), storage.AuditEvent{Type: "client.registered", Outcome: "success", ClientID: client.ID, IP: ip,
		Detail: map[string]string{"client_name": truncate(client.Name, 80), "redirect_uris": strconv.Itoa(len(client.RedirectURIs))}})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusCreated, dcr.RegistrationResponse(client, now))
}

func (h *registration) refuse(w http.ResponseWriter, r *http.Request, ip string, e *dcr.Error) {
	h.audit(r.Context(), storage.AuditEvent{Type: "client.register_refused", Outcome: e.Code, IP: ip})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.Status(), e.Body())
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

func remoteHost(r *http.Request) string {
	host := r.RemoteAddr
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			host = host[:i]
			break
		}
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host
}

// limitPerIP applies Config.TokenRatePerIP to h. The limiter is shared by
// the endpoints it wraps (a client's token and revocation requests together).
func (s *Server) limitPerIP(h http.Handler) http.Handler {
	if s.cfg.TokenRatePerIP <= 0 {
		return h
	}
	if s.tokenLimits == nil {
		burst := s.cfg.TokenBurstPerIP
		if burst <= 0 {
			burst = 1
		}
		s.tokenLimits = newIPLimiter(rate.Limit(s.cfg.TokenRatePerIP), burst, s.cfg.Now)
	}
	l := s.tokenLimits
	clientIP := s.cfg.ClientIP
	if clientIP == nil {
		clientIP = remoteHost
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions && !l.allow(clientIP(r)) {
			w.Header().Set("Retry-After", strconv.Itoa(int(l.retryAfter().Seconds())+1))
			WriteError(w, r, &Error{Code: "temporarily_unavailable", Description: "too many requests from this address; try again later", Status: http.StatusTooManyRequests})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ipLimiter is a token bucket per client IP, bounded in size: when full, it
// drops the buckets that have refilled (they carry no state worth keeping).
type ipLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	now     func() time.Time
	buckets map[string]*rate.Limiter
}

const maxLimiterEntries = 10000

func newIPLimiter(limit rate.Limit, burst int, now func() time.Time) *ipLimiter {
	return &ipLimiter{limit: limit, burst: burst, now: now, buckets: map[string]*rate.Limiter{}}
}

func (l *ipLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets) >= maxLimiterEntries {
			for k, v := range l.buckets {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= maxLimiterEntries {
				return false
			}
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[ip] = b
	}
	return b.AllowN(now, 1)
}

func (l *ipLimiter) retryAfter() time.Duration {
	if l.limit <= 0 {
		return time.Minute
	}
	return time.Duration(float64(time.Second) / float64(l.limit))
}
