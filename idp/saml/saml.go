package saml

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/upstream"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// TicketKind is the storage.Ticket kind of pending SAML requests.
const TicketKind = "saml.request"

// CookiePrefix is the binding cookie's name before the provider name. Over
// https it carries the __Host- prefix.
const CookiePrefix = "mcpauth_saml_"

// retryMetadata bounds how often a failed metadata fetch is retried.
const retryMetadata = 5 * time.Second

var b64 = base64.RawURLEncoding

// Provider is an upstream SAML identity provider; it implements
// idp.Provider.
type Provider struct {
	idp.Upstream
	cfg     Config
	key     crypto.Signer
	cert    *x509.Certificate
	acsURL  url.URL
	metaURL url.URL
	paths   struct{ acs, metadata string }
	// browser ties the round trip to the browser. Its cookie is
	// SameSite=None (and so Secure; browsers accept that on
	// http://localhost), as the IdP's POST is cross-site. Tests set Lax to
	// show why.
	browser idp.BrowserBinding

	mu      sync.Mutex
	sp      *saml.ServiceProvider // nil until the IdP metadata is loaded
	lastTry time.Time
	lastErr error
}

// Interface guard.
var _ idp.Provider = (*Provider)(nil)

// New validates cfg, loads (or generates and persists) the SP key pair and
// loads the IdP metadata. A metadata URL that cannot be fetched is not
// fatal: it is logged and retried when a user next signs in.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key, cert, err := spKeyPair(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	bu, _ := url.Parse(cfg.BaseURL)
	p := &Provider{Upstream: idp.NewUpstream("saml", cfg.UpstreamConfig), cfg: cfg, key: key, cert: cert}
	p.browser = idp.BrowserBinding{Cookie: CookiePrefix + cfg.Name, Secure: true, SameSite: http.SameSiteNoneMode,
		TicketKind: TicketKind, TTL: requestTTL, Store: cfg.Store, Now: cfg.Now}
	if bu.Scheme == "https" {
		p.browser.Cookie = "__Host-" + p.browser.Cookie
	}
	p.acsURL, p.metaURL = *bu, *bu
	p.acsURL.Path += "/acs"
	p.metaURL.Path += "/metadata"
	p.paths.acs, p.paths.metadata = p.acsURL.Path, p.metaURL.Path
	if _, err := p.serviceProvider(ctx); err != nil {
		if cfg.IdPMetadataURL == "" {
			return nil, err // a broken file or document is a configuration error
		}
		cfg.Logger.Warn("saml: loading the IdP metadata failed; retrying at the next sign-in", "provider", cfg.Name, "error", err)
	}
	return p, nil
}

// EntityID is our SP entity id (the audience to register at the IdP).
func (p *Provider) EntityID() string { return p.cfg.EntityID }

// ACSURL is our assertion consumer service URL (HTTP-POST binding).
func (p *Provider) ACSURL() string { return p.acsURL.String() }

// MetadataURL is where our SP metadata is served.
func (p *Provider) MetadataURL() string { return p.metaURL.String() }

// serviceProvider returns the crewjam service provider, loading the IdP
// metadata when needed.
func (p *Provider) serviceProvider(ctx context.Context) (*saml.ServiceProvider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sp != nil {
		return p.sp, nil
	}
	now := p.cfg.Now()
	if p.lastErr != nil && now.Sub(p.lastTry) < retryMetadata && now.Sub(p.lastTry) >= 0 {
		return nil, p.lastErr
	}
	p.lastTry = now
	md, err := p.loadMetadata(ctx)
	if err != nil {
		p.lastErr = err
		return nil, err
	}
	p.sp = &saml.ServiceProvider{
		EntityID:          p.cfg.EntityID,
		Key:               p.key,
		Certificate:       p.cert,
		HTTPClient:        p.cfg.HTTPClient,
		MetadataURL:       p.metaURL,
		AcsURL:            p.acsURL,
		IDPMetadata:       md,
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat,
		SignatureMethod:   dsig.RSASHA256SignatureMethod,
		AllowIDPInitiated: false,
	}
	p.lastErr = nil
	return p.sp, nil
}

// loadMetadata fetches or reads the IdP metadata and checks it.
func (p *Provider) loadMetadata(ctx context.Context) (*saml.EntityDescriptor, error) {
	var raw []byte
	switch {
	case len(p.cfg.IdPMetadata) > 0:
		raw = p.cfg.IdPMetadata
	case p.cfg.IdPMetadataFile != "":
		b, err := os.ReadFile(p.cfg.IdPMetadataFile)
		if err != nil {
			return nil, fmt.Errorf("saml: %s: idp metadata: %w", p.cfg.Name, err)
		}
		raw = b
	default:
		ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.IdPMetadataURL, nil)
		if err != nil {
			return nil, fmt.Errorf("saml: %s: idp metadata: %w", p.cfg.Name, err)
		}
		res, err := p.cfg.HTTPClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("saml: %s: fetching idp metadata: %w", p.cfg.Name, err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("saml: %s: fetching idp metadata: HTTP %d", p.cfg.Name, res.StatusCode)
		}
		if raw, err = io.ReadAll(io.LimitReader(res.Body, maxMetadata+1)); err != nil {
			return nil, fmt.Errorf("saml: %s: fetching idp metadata: %w", p.cfg.Name, err)
		}
	}
	md, err := parseIdPMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("saml: %s: %w", p.cfg.Name, err)
	}
	return md, nil
}

var errMetadata = errors.New("saml: unusable idp metadata")

// parseIdPMetadata reads an EntityDescriptor (or the one IdP of an
// EntitiesDescriptor) and checks that it names an entity id, signing
// certificates and https single sign-on endpoints.
func parseIdPMetadata(raw []byte) (*saml.EntityDescriptor, error) {
	if len(raw) > maxMetadata {
		return nil, fmt.Errorf("%w: larger than %d bytes", errMetadata, maxMetadata)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil || len(ed.IDPSSODescriptors) == 0 {
		var eds saml.EntitiesDescriptor
		if err2 := xml.Unmarshal(raw, &eds); err2 != nil {
			return nil, fmt.Errorf("%w: %v", errMetadata, err)
		}
		var found []saml.EntityDescriptor
		for _, e := range eds.EntityDescriptors {
			if len(e.IDPSSODescriptors) > 0 {
				found = append(found, e)
			}
		}
		if len(found) != 1 {
			return nil, fmt.Errorf("%w: expected one identity provider, found %d", errMetadata, len(found))
		}
		ed = found[0]
	}
	if ed.EntityID == "" {
		return nil, fmt.Errorf("%w: no entityID", errMetadata)
	}
	certs, ssos := 0, 0
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use == "" || kd.Use == "signing" {
				for _, c := range kd.KeyInfo.X509Data.X509Certificates {
					if strings.TrimSpace(c.Data) != "" {
						certs++
					}
				}
			}
		}
		for _, s := range d.SingleSignOnServices {
			if s.Binding != saml.HTTPRedirectBinding && s.Binding != saml.HTTPPostBinding {
				continue
			}
			u, err := url.Parse(s.Location)
			if err != nil || u.Host == "" || !upstream.SecureURL(u) {
				return nil, fmt.Errorf("%w: single sign-on URL %q is not https", errMetadata, s.Location)
			}
			ssos++
		}
	}
	if certs == 0 {
		return nil, fmt.Errorf("%w: no signing certificate", errMetadata)
	}
	if ssos == 0 {
		return nil, fmt.Errorf("%w: no HTTP-Redirect or HTTP-POST single sign-on service", errMetadata)
	}
	return &ed, nil
}

// pending is the value of a request ticket.
type pending struct {
	Attempt   string    `json:"attempt"`
	Provider  string    `json:"provider"`
	RequestID string    `json:"request_id"`
	Created   time.Time `json:"created"`
}

// Begin implements idp.Provider: it sends an AuthnRequest to the IdP with
// the HTTP-Redirect binding (303) or the HTTP-POST binding (an
// auto-submitting form), after binding its id to this browser.
func (p *Provider) Begin(w http.ResponseWriter, r *http.Request, a idp.Attempt) error {
	if a.BaseURL != p.cfg.BaseURL {
		return fmt.Errorf("saml: %s: base URL %q does not match the hosted login's %q", p.cfg.Name, p.cfg.BaseURL, a.BaseURL)
	}
	sp, err := p.serviceProvider(r.Context())
	if err != nil {
		return err
	}
	binding, location := p.binding(sp)
	if location == "" {
		return fmt.Errorf("saml: %s: the IdP offers no usable single sign-on binding", p.cfg.Name)
	}
	req, err := sp.MakeAuthenticationRequest(location, binding, saml.HTTPPostBinding)
	if err != nil {
		return fmt.Errorf("saml: %s: authn request: %w", p.cfg.Name, err)
	}
	v, err := json.Marshal(pending{Attempt: a.ID, Provider: p.cfg.Name, RequestID: req.ID, Created: p.cfg.Now()})
	if err != nil {
		return err
	}
	if _, err := p.browser.Begin(r.Context(), w, v); err != nil {
		return fmt.Errorf("saml: %w", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if binding == saml.HTTPRedirectBinding {
		u, err := req.Redirect("", sp)
		if err != nil {
			return fmt.Errorf("saml: %s: redirect binding: %w", p.cfg.Name, err)
		}
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	buf, err := doc.WriteToBytes()
	if err != nil {
		return fmt.Errorf("saml: %s: post binding: %w", p.cfg.Name, err)
	}
	return writePostForm(w, location, "SAMLRequest", base64.StdEncoding.EncodeToString(buf))
}

// binding picks the binding and location of our AuthnRequest.
func (p *Provider) binding(sp *saml.ServiceProvider) (string, string) {
	redirect := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	post := sp.GetSSOBindingLocation(saml.HTTPPostBinding)
	switch {
	case p.cfg.Binding == "post" && post != "":
		return saml.HTTPPostBinding, post
	case p.cfg.Binding == "redirect" && redirect != "":
		return saml.HTTPRedirectBinding, redirect
	case p.cfg.Binding == "" && redirect != "":
		return saml.HTTPRedirectBinding, redirect
	case p.cfg.Binding == "" && post != "":
		return saml.HTTPPostBinding, post
	}
	return "", ""
}

var postForm = template.Must(template.New("post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in…</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><form id="f" method="post" action="{{.URL}}">
<input type="hidden" name="{{.Field}}" value="{{.Value}}">
<noscript><p>JavaScript is off: press the button to continue signing in.</p><button type="submit">Continue</button></noscript>
</form><script nonce="{{.Nonce}}">document.getElementById("f").submit();</script></body></html>`))

// writePostForm answers with a page that posts field=value to target.
func writePostForm(w http.ResponseWriter, target, field, value string) error {
	nb := make([]byte, 16)
	if _, err := rand.Read(nb); err != nil {
		return err
	}
	nonce := b64.EncodeToString(nb)
	var buf bytes.Buffer
	if err := postForm.Execute(&buf, map[string]string{"URL": target, "Field": field, "Value": value, "Nonce": nonce}); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No form-action: Chromium applies it to the redirects that follow the
	// POST, and IdPs redirect to their own login pages, possibly on other
	// hosts. The page holds nothing but our form.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

// Handler implements idp.Provider: GET /metadata and POST /acs.
func (p *Provider) Handler(c idp.Completer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case p.paths.metadata:
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				c.Error(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "This request method is not supported here.")
				return
			}
			p.serveMetadata(w)
		case p.paths.acs:
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				c.Error(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "This request method is not supported here.")
				return
			}
			p.acs(w, r, c)
		default:
			c.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
		}
	})
}

// Metadata returns our SP metadata: the POST ACS only (no artifact
// binding), signed requests, signed assertions wanted.
func (p *Provider) Metadata() ([]byte, error) {
	sp := saml.ServiceProvider{EntityID: p.cfg.EntityID, Key: p.key, Certificate: p.cert, MetadataURL: p.metaURL, AcsURL: p.acsURL,
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat, SignatureMethod: dsig.RSASHA256SignatureMethod,
		MetadataValidDuration: p.cfg.MetadataValidity}
	md := sp.Metadata()
	for i := range md.SPSSODescriptors {
		d := &md.SPSSODescriptors[i]
		d.AssertionConsumerServices = slices.DeleteFunc(d.AssertionConsumerServices, func(e saml.IndexedEndpoint) bool {
			return e.Binding != saml.HTTPPostBinding
		})
		d.NameIDFormats = []saml.NameIDFormat{saml.PersistentNameIDFormat, saml.EmailAddressNameIDFormat, saml.UnspecifiedNameIDFormat}
	}
	return xml.MarshalIndent(md, "", "  ")
}

func (p *Provider) serveMetadata(w http.ResponseWriter) {
	buf, err := p.Metadata()
	if err != nil {
		p.cfg.Logger.Error("saml: rendering SP metadata failed", "provider", p.cfg.Name, "error", err)
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Content-Disposition", `inline; filename="`+p.cfg.Name+`-sp-metadata.xml"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(append([]byte(xml.Header), buf...))
}

// acs verifies the IdP's response and completes the login.
func (p *Provider) acs(w http.ResponseWriter, r *http.Request, c idp.Completer) {
	ctx := r.Context()
	fail := func(attempt, reason string, err error) {
		p.cfg.Logger.Warn("saml: upstream login refused", "provider", p.cfg.Name, "reason", reason, "error", err)
		c.FailUpstream(w, r, attempt, reason)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxResponseForm)
	if err := r.ParseForm(); err != nil {
		fail("", "response_malformed", err)
		return
	}
	// The binding cookie first: without it nothing else is trusted. This
	// also refuses IdP-initiated (unsolicited) responses.
	_, v, err := p.browser.Take(w, r)
	switch {
	case errors.Is(err, idp.ErrBindingMissing):
		fail("", "binding_cookie_missing", err)
		return
	case errors.Is(err, idp.ErrBindingUnknown):
		fail("", "request_unknown", err)
		return
	case err != nil:
		fail("", "store_error", err)
		return
	}
	var pend pending
	if err := json.Unmarshal(v, &pend); err != nil || pend.Provider != p.cfg.Name || pend.RequestID == "" {
		fail("", "request_unknown", err)
		return
	}
	if r.PostForm.Has("SAMLart") || len(r.PostForm["SAMLResponse"]) != 1 {
		fail(pend.Attempt, "response_malformed", nil)
		return
	}
	raw, err := decodeResponse(r.PostForm.Get("SAMLResponse"))
	if err != nil {
		fail(pend.Attempt, "response_malformed", err)
		return
	}
	sp, err := p.serviceProvider(ctx)
	if err != nil {
		fail(pend.Attempt, idp.ReasonMetadataUnavailable, err)
		return
	}
	ext, reason, err := p.verify(sp, raw, pend.RequestID)
	if err != nil {
		fail(pend.Attempt, reason, err)
		return
	}
	c.CompleteUpstream(w, r, pend.Attempt, ext)
}

// decodeResponse decodes the base64 SAMLResponse (whitespace tolerated).
func decodeResponse(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, errors.New("saml: empty response")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("saml: response base64: %w", err)
	}
	return raw, nil
}
