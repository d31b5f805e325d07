package authserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// reasonLogLevel is the level a refusal is logged at: warn for replays (a
// stolen code or token may be in play), debug for the answers of a rate
// limit (a flood must not become a log flood; the aggregated audit record
// counts them), info for the rest.
func reasonLogLevel(r oauth.Reason) slog.Level {
	switch r {
	case oauth.ReasonCodeReused, oauth.ReasonRefreshReused, oauth.ReasonIDJAGReplayed:
		return slog.LevelWarn
	case oauth.ReasonRateLimited, oauth.ReasonRegistrationRateLimit, oauth.ReasonCIMDFetchRateLimited:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// clientRefusal is the reason a client lookup failed (wraps errClientUnknown).
type clientRefusal struct {
	reason oauth.Reason
	detail string // safe to show (the CIMD package's short reason)
	cause  error
}

func (e *clientRefusal) Error() string   { return errClientUnknown.Error() + ": " + string(e.reason) }
func (e *clientRefusal) Unwrap() []error { return []error{errClientUnknown, e.cause} }

// safeReasoner is a CIMD error with a short reason safe to show.
type safeReasoner interface{ Reason() string }

// cimdRefusal classifies a resolver error.
func cimdRefusal(err error) (oauth.Reason, string) {
	var detail string
	var sr safeReasoner
	if errors.As(err, &sr) {
		detail = sr.Reason()
	}
	switch {
	case errors.Is(err, cimd.ErrRateLimited):
		return oauth.ReasonCIMDFetchRateLimited, ""
	case errors.Is(err, cimd.ErrTooLarge):
		return oauth.ReasonCIMDDocumentTooLarge, detail
	case errors.Is(err, cimd.ErrForbiddenAddress):
		return oauth.ReasonCIMDAddressForbidden, ""
	case errors.Is(err, cimd.ErrFetch):
		return oauth.ReasonCIMDFetchFailed, detail
	case errors.Is(err, cimd.ErrInvalidDocument):
		return oauth.ReasonCIMDDocumentInvalid, detail
	case errors.Is(err, cimd.ErrUntrustedHost):
		return oauth.ReasonCIMDHostUntrusted, ""
	case errors.Is(err, cimd.ErrInvalidClientID):
		return oauth.ReasonCIMDClientIDInvalid, ""
	}
	return oauth.ReasonClientUnknown, ""
}

// clientLookupError is the invalid_client answer to a failed lookup, in
// plain words of its reason.
func clientLookupError(err error) *oauth.Error {
	var cr *clientRefusal
	if errors.As(err, &cr) {
		return oauth.ErrInvalidClient("").Plain(cr.reason, cr.detail)
	}
	return oauth.ErrInvalidClient("").Plain(oauth.ReasonClientUnknown, "")
}

// refused logs a refusal once (info; warn for replays) with its reason and
// client id, never a credential, and audits it through the refusal
// aggregator: one stored record per type, outcome, reason, client, source
// prefix and minute (a flood of unauthenticated requests costs a bounded
// number of records). OnEvent sees every refusal.
func (s *Server) refused(r *http.Request, typ, clientID string, e *oauth.Error) {
	reason := oauth.ReasonOf(e)
	e.Reason = reason
	ip := s.clientIP(r)
	s.cfg.Logger.Log(r.Context(), reasonLogLevel(reason), "authserver: refused", "type", typ, "error", e.Code, "reason", string(reason),
		"client_id", safeName(clientID), "ip", ip)
	ev := storage.AuditEvent{Time: s.cfg.Now(), Type: typ, Outcome: e.Code, ClientID: clientID, IP: ip,
		Detail: map[string]string{"reason": string(reason)}}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
	s.refusals.Add(context.WithoutCancel(r.Context()), ev)
}

// writeRefusal answers a /token refusal: logged and audited (refused),
// then written as JSON.
func (s *Server) writeRefusal(w http.ResponseWriter, r *http.Request, clientID string, e *oauth.Error) {
	s.refused(r, audit.TokenRefused, clientID, e)
	WriteError(w, r, e)
}

// writeRevokeRefusal is writeRefusal for /revoke.
func (s *Server) writeRevokeRefusal(w http.ResponseWriter, r *http.Request, clientID string, e *oauth.Error) {
	s.refused(r, audit.RevokeRefused, clientID, e)
	WriteError(w, r, e)
}
