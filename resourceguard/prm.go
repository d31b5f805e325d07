package resourceguard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// OAuth 2.0 Protected Resource Metadata, RFC 9728.
//
// §3: "the well-known URI string is inserted into the protected resource's
// resource identifier between the host component and the path component, if
// any": https://mcp.example.com/mcp -> https://mcp.example.com/.well-known/
// oauth-protected-resource/mcp. The document is also served at the root
// /.well-known/oauth-protected-resource (unless DisableRootMetadata), where
// some MCP clients look first.
// §3.3: the "resource" value must be identical to the resource identifier the
// client used; it is the configured Resource, never built from Host.

// WellKnownPRM is the RFC 9728 well-known URI suffix.
const WellKnownPRM = "/.well-known/oauth-protected-resource"

// Metadata is the RFC 9728 §2 document the guard publishes.
type Metadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
	// DPoP (RFC 9728 §2), published only with DPoP on.
	DPoPSigningAlgs   []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundRequired bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

func (g *Guard) buildMetadata(res *url.URL, cfg Config) error {
	path := strings.TrimSuffix(res.EscapedPath(), "/")
	g.metadataPath = WellKnownPRM + path
	if !cfg.DisableRootMetadata {
		g.rootPath = WellKnownPRM
	}
	g.metadataURL = res.Scheme + "://" + res.Host + g.metadataPath

	as := cfg.AuthorizationServers
	if len(as) == 0 {
		as = []string{cfg.Issuer}
	}
	for _, a := range as {
		if err := checkURLString("authorization server", a); err != nil {
			return err
		}
		if u, err := url.Parse(a); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("resourceguard: authorization server %q is not an http(s) URL", a)
		}
	}
	scopes := cfg.ScopesSupported
	if len(scopes) == 0 {
		scopes = slices.Clone(g.baseScopes)
		keys := make([]string, 0, len(g.methodScope))
		for k := range g.methodScope {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			scopes = append(scopes, g.methodScope[k]...)
		}
	}
	var published []string
	for _, s := range dedupe(scopes) {
		if !validScopeToken(s) {
			return fmt.Errorf("resourceguard: invalid supported scope %q", s)
		}
		if s == "offline_access" { // a scope of the authorization server, not of this resource
			continue
		}
		published = append(published, s)
	}
	if cfg.ResourceDocumentation != "" {
		if err := checkURLString("resource documentation", cfg.ResourceDocumentation); err != nil {
			return err
		}
	}
	md := Metadata{
		Resource:               cfg.Resource,
		AuthorizationServers:   slices.Clone(as),
		ScopesSupported:        published,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           cfg.ResourceName,
		ResourceDocumentation:  cfg.ResourceDocumentation,
	}
	if g.dpop != nil {
		md.DPoPSigningAlgs = slices.Clone(g.dpop.algs)
		md.DPoPBoundRequired = g.dpop.required
	}
	b, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("resourceguard: metadata: %w", err)
	}
	g.metadataJSON = append(b, '\n')
	return nil
}

// ResourceMetadataURL is the path-inserted PRM URL, used in challenges.
func (g *Guard) ResourceMetadataURL() string { return g.metadataURL }

// Resource is the configured resource URL.
func (g *Guard) Resource() string { return g.resource }

// Issuer is the expected issuer.
func (g *Guard) Issuer() string { return g.issuer }

// MetadataPaths are the request paths at which the PRM is served.
func (g *Guard) MetadataPaths() []string {
	if g.rootPath == "" || g.rootPath == g.metadataPath {
		return []string{g.metadataPath}
	}
	return []string{g.metadataPath, g.rootPath}
}

// Metadata returns the published document.
func (g *Guard) Metadata() Metadata {
	var md Metadata
	_ = json.Unmarshal(g.metadataJSON, &md)
	return md
}

// ServeMetadata reports whether r is a PRM request for this guard and serves
// it if so: GET and HEAD answer the document, OPTIONS answers a CORS
// preflight, other methods 405. CORS is open (Access-Control-Allow-Origin: *)
// and never with credentials: the document is public.
func (g *Guard) ServeMetadata(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	if p != g.metadataPath && (g.rootPath == "" || p != g.rootPath) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(g.metadataJSON)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(g.metadataJSON)
		}
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":"method_not_allowed"}` + "\n"))
	}
	return true
}

// IsWellKnown reports whether path has a /.well-known/ segment (RFC 8615),
// compared without regard to case.
func IsWellKnown(path string) bool {
	p := strings.ToLower(path)
	return strings.Contains(p, "/.well-known/") || strings.HasSuffix(p, "/.well-known")
}

// ServeDiscoveryNotFound answers a JSON 404 (WriteNotFound) for a request
// whose path has a /.well-known/ segment and that ServeMetadata did not
// serve, and reports whether it did. Clients probe discovery documents under
// the resource's path (e.g. /mcp/.well-known/openid-configuration, treating
// the MCP URL as an issuer): such a probe must get a JSON 404, not a 401 or
// the upstream's page (requirement 28). Nothing reaches the upstream.
func (g *Guard) ServeDiscoveryNotFound(w http.ResponseWriter, r *http.Request) bool {
	if !IsWellKnown(r.URL.Path) {
		return false
	}
	WriteNotFound(w, r)
	return true
}

// notFoundBody is the JSON 404 of every well-known path that serves nothing.
var notFoundBody = []byte(`{"error":"not_found"}` + "\n")

// WriteNotFound writes the JSON 404 {"error":"not_found"} of a discovery
// path that serves no document, with open CORS (never with credentials) so
// browser clients read it as a 404 and move on; a CORS preflight gets 204.
func WriteNotFound(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(notFoundBody)))
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		_, _ = w.Write(notFoundBody)
	}
}
