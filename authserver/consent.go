package authserver

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// consentNeeded decides whether the user must see the consent page
// (requirement 13): always for prompt=consent; never for an owned client
// with SkipConsent; otherwise unless a remembered consent of this user for
// this client covers the scopes (superset), the same resource and the
// client's current metadata fingerprint.
func (s *Server) consentNeeded(r *http.Request, ar *authzRequest, id Identity) (bool, error) {
	if ar.prompt["consent"] {
		return true, nil
	}
	if !thirdParty(ar.client) && ar.client.SkipConsent {
		return false, nil
	}
	c, err := s.store.GetConsent(r.Context(), id.Subject, ar.client.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !s.consentCovers(c, ar.client, ar), nil
}

// approvedTools is the tool snapshot of the user's live remembered consent
// to this client for this resource, or nil.
func (s *Server) approvedTools(r *http.Request, ar *authzRequest, id Identity) []string {
	if _, ok := s.toolMap(ar.resource); !ok {
		return nil
	}
	c, err := s.store.GetConsent(r.Context(), id.Subject, ar.client.ID)
	if err != nil || !s.consentLive(c, ar.client) || c.Resource != ar.resource {
		return nil
	}
	if c.Tools == nil {
		return []string{}
	}
	return c.Tools
}

// consentLive reports whether a remembered consent still stands for client
// as it is now: unexpired, within the client's consent memory (a policy
// shortened or turned off since it was stored cuts it), same metadata
// fingerprint.
func (s *Server) consentLive(c storage.Consent, client storage.Client) bool {
	now := s.cfg.Now()
	if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
		return false
	}
	switch ttl := s.consentTTL(client); {
	case ttl < 0:
		return false
	case !c.GrantedAt.IsZero() && !now.Before(c.GrantedAt.Add(ttl)):
		return false
	}
	return c.Fingerprint == fingerprintOf(client)
}

// consentCovers reports whether a remembered consent, live for client,
// covers the request: the same resource and every requested scope.
func (s *Server) consentCovers(c storage.Consent, client storage.Client, ar *authzRequest) bool {
	if !s.consentLive(c, client) || c.Resource != ar.resource {
		return false
	}
	for _, sc := range ar.scopes {
		if !contains(c.Scopes, sc) {
			return false
		}
	}
	// A tool that appeared since under these scopes needs fresh consent
	// (tool snapshot, requirement 31).
	return s.snapshotCovers(c.Tools, ar.resource, ar.scopes)
}

// consentedBefore reports whether the user has a remembered, unexpired
// consent for this client as it is now (same metadata fingerprint), whatever
// its scopes and resource: such a client may receive this user's error
// redirects (requirement 42). A storage error counts as no.
func (s *Server) consentedBefore(r *http.Request, client storage.Client, subject string) bool {
	if subject == "" || client.ID == "" {
		return false
	}
	c, err := s.store.GetConsent(r.Context(), subject, client.ID)
	if err != nil {
		return false
	}
	return s.consentLive(c, client)
}

// fingerprintOf is the client's metadata fingerprint (set by the CIMD
// resolver and DCR; computed for clients that lack one).
func fingerprintOf(c storage.Client) string {
	if c.Fingerprint != "" {
		return c.Fingerprint
	}
	return oauth.Fingerprint(c)
}

// consentPage describes the consent page for this request. approved is the
// tool snapshot of the user's remembered consent to this client and
// resource (nil: none): tools outside it are marked new.
func (s *Server) consentPage(ar *authzRequest, id Identity, approved []string) ConsentPage {
	p := ConsentPage{
		Client:       ar.client,
		RedirectHost: redirectHost(ar.redirectURI),
		Scopes:       ar.scopes,
		Resource:     ar.resource,
		Action:       s.path(pathAuthorize) + "?" + ar.rawQuery,
		User:         id,
		LoopbackOnly: len(ar.client.RedirectURIs) > 0,
		NoRemember:   s.consentTTL(ar.client) < 0,
		Tools:        s.consentTools(ar.resource, ar.scopes, approved),
	}
	if ar.client.Kind == storage.ClientCIMD {
		if u, err := url.Parse(ar.client.ID); err == nil {
			p.ClientIDHost = u.Host
		}
	}
	for _, u := range ar.client.RedirectURIs {
		if !oauth.IsLoopbackRedirect(u) {
			p.LoopbackOnly = false
		}
	}
	return p
}

// redirectHost is the host of an http(s) redirect URI, or the scheme of a
// private-use one ("cursor:").
func redirectHost(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Host
	}
	return u.Scheme + ":"
}

// consentPosted handles the consent form (POST /authorize): CSRF, then the
// decision. The request itself was validated again from the query.
func (s *Server) consentPosted(w http.ResponseWriter, r *http.Request, ar *authzRequest, id Identity) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := s.cfg.Browser.VerifyCSRF(r); err != nil {
		s.authorizeFailed(w, r, ar, &authzFailure{page: true, err: &oauth.Error{Code: oauth.CodeInvalidRequest, Status: http.StatusForbidden,
			Description: "the form has expired; go back to the application and try again", Reason: oauth.ReasonConsentFormInvalid}})
		return
	}
	if err := r.ParseForm(); err != nil {
		s.authorizeFailed(w, r, ar, &authzFailure{page: true, err: oauth.ErrInvalidRequest("malformed form").Because(oauth.ReasonConsentFormInvalid)})
		return
	}
	decision := r.PostForm["decision"]
	if len(decision) != 1 {
		s.authorizeFailed(w, r, ar, &authzFailure{page: true, err: oauth.ErrInvalidRequest("missing decision").Because(oauth.ReasonConsentFormInvalid)})
		return
	}
	switch decision[0] {
	case "approve":
	case "deny":
		s.emit(r.Context(), r, storage.AuditEvent{Type: audit.ConsentDenied, Outcome: "denied", Subject: id.Subject, ClientID: ar.client.ID})
		RedirectError(w, r, ar.redirectURI, ar.state, s.cfg.Issuer, oauth.ErrAccessDenied("the user denied the request"))
		return
	default:
		s.authorizeFailed(w, r, ar, &authzFailure{page: true, err: oauth.ErrInvalidRequest("unknown decision").Because(oauth.ReasonConsentFormInvalid)})
		return
	}
	granted := storage.AuditEvent{Type: audit.ConsentGrant, Outcome: "success", Subject: id.Subject, ClientID: ar.client.ID,
		Detail: map[string]string{"scope": strings.Join(ar.scopes, " "), "resource": ar.resource}}
	stored := false
	if ttl := s.consentTTL(ar.client); ttl > 0 && strings.EqualFold(r.PostForm.Get("remember"), "on") {
		now := s.cfg.Now()
		c := storage.Consent{Subject: id.Subject, ClientID: ar.client.ID, Scopes: ar.scopes, Resource: ar.resource,
			Tools: s.toolSnapshot(ar.resource, ar.scopes), Fingerprint: fingerprintOf(ar.client), GrantedAt: now, ExpiresAt: now.Add(ttl)}
		// The remembered consent commits with its record.
		txCtx, notify := s.withAudit(r.Context(), r, func(error, *storage.Grant) []storage.AuditEvent { return []storage.AuditEvent{granted} })
		if err := s.store.PutConsent(txCtx, c); err != nil {
			// Not fatal: the user approved; they will be asked again.
			s.cfg.Logger.Warn("authserver: remember consent", "client_id", ar.client.ID, "error", err)
		} else {
			notify()
			stored = true
		}
	}
	if !stored {
		s.record(r.Context(), r, granted) // written before the redirect
	}
	s.issueCode(w, r, ar, id)
}

// reuseConsent lets a DCR client that registered again with the same
// metadata skip the consent page (claude.ai re-registers again and again):
// when the client's redirect URIs are all https on public names and a
// remembered consent of this user to one of its predecessors (same
// fingerprint and software id, still registered, not disabled) covers the
// request, that consent is copied to the client, with the same scopes,
// resource and expiry (reuse never extends a consent), and audited as
// consent.reused with both client ids. It reports whether it did. Never for
// loopback or private-use redirects: any local program can register those.
// A storage failure counts as no reuse (the user sees the consent page).
func (s *Server) reuseConsent(r *http.Request, ar *authzRequest, id Identity) bool {
	client := ar.client
	if client.Kind != storage.ClientDCR || id.Subject == "" || ar.prompt["consent"] || len(client.Predecessors) == 0 ||
		!dcr.PublicWebRedirects(client.RedirectURIs) {
		return false
	}
	ctx := r.Context()
	for i, prevID := range client.Predecessors {
		if i == maxPredecessors {
			break
		}
		prev, err := s.store.GetClient(ctx, prevID)
		if err != nil || prev.Kind != storage.ClientDCR || prev.Disabled || prev.ID == client.ID ||
			fingerprintOf(prev) != fingerprintOf(client) || prev.SoftwareID != client.SoftwareID {
			continue
		}
		c, err := s.store.GetConsent(ctx, id.Subject, prev.ID)
		if err != nil || !s.consentCovers(c, prev, ar) {
			continue
		}
		copied := storage.Consent{Subject: id.Subject, ClientID: client.ID, Scopes: c.Scopes, Resource: c.Resource, Tools: c.Tools,
			Fingerprint: fingerprintOf(client), GrantedAt: c.GrantedAt, ExpiresAt: c.ExpiresAt}
		reused := storage.AuditEvent{Type: audit.ConsentReused, Outcome: "success", Subject: id.Subject, ClientID: client.ID,
			Detail: map[string]string{"previous_client_id": prev.ID, "scope": strings.Join(ar.scopes, " "), "resource": ar.resource}}
		txCtx, notify := s.withAudit(ctx, r, func(error, *storage.Grant) []storage.AuditEvent { return []storage.AuditEvent{reused} })
		if err := s.store.PutConsent(txCtx, copied); err != nil {
			s.cfg.Logger.Warn("authserver: reuse consent", "client_id", client.ID, "error", err)
			return false
		}
		notify()
		return true
	}
	return false
}
