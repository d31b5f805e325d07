package authserver

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
)

// The per-address rate limit of the token and revocation endpoints
// (Config.TokenRatePerIP).

// remoteHost is the request's peer address without the port, the client IP
// when no Config.ClientIP is set.
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
		s.tokenLimits = abuse.NewLimiter(abuse.LimiterConfig{
			Rate: rate.Limit(s.cfg.TokenRatePerIP), Burst: s.cfg.TokenBurstPerIP, Now: s.cfg.Now,
			Prefixes: abuse.Prefixes{IPv4: s.cfg.IPv4Prefix, IPv6: s.cfg.IPv6Prefix},
			Shared:   s.cfg.SharedLimits, SharedName: "token", Logger: s.cfg.Logger,
		})
	}
	l := s.tokenLimits
	clientIP := s.cfg.ClientIP
	if clientIP == nil {
		clientIP = remoteHost
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions {
			if d := l.Allow(clientIP(r)); !d.OK {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int((d.RetryAfter+time.Second-1)/time.Second))))
				typ := audit.TokenRefused
				if strings.HasSuffix(r.URL.Path, pathRevoke) {
					typ = audit.RevokeRefused
				}
				e := &oauth.Error{Code: "temporarily_unavailable", Description: "too many requests from this address; try again later", Status: http.StatusTooManyRequests, Reason: oauth.ReasonRateLimited}
				s.refused(r, typ, "", e)
				WriteError(w, r, e)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
