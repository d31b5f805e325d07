package caddymodule

import (
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Discovery paths on the product's routes (requirement 28): every
// /.well-known/ path that mcp_auth_server or mcp_protect owns answers a JSON
// document or a JSON 404 {"error":"not_found"}, never Caddy's empty 200 of
// an unanswered request.
//
//   - mcp_auth_server owns /.well-known/oauth-authorization-server[/…] and
//     /.well-known/openid-configuration[/…] on its site (authserver.Server.
//     OwnsDiscovery). It passes protected resource metadata paths on to the
//     guards of the site when one of them serves that path on this host, and
//     answers a JSON 404 when none does.
//   - mcp_protect owns the three families at the root of its host (its
//     metadata route) and every /.well-known/ path under its matcher. A
//     sibling guard's PRM path on the same host is passed on; nothing else
//     reaches the upstream.
//   - A discovery name appended to another path on the authorization
//     server's site (/x/.well-known/openid-configuration) is not the
//     product's: it goes to the next handlers, and is a JSON 404 only when
//     none of them answers.

// discoveryRoots are the well-known names of OAuth discovery.
var discoveryRoots = []string{
	authserver.WellKnownAuthorizationServer,
	"/.well-known/openid-configuration",
	resourceguard.WellKnownPRM,
}

// rootDiscovery reports whether path is one of discoveryRoots, alone or
// followed by a path.
func rootDiscovery(path string) bool {
	for _, wk := range discoveryRoots {
		if path == wk || strings.HasPrefix(path, wk+"/") {
			return true
		}
	}
	return false
}

// prmFamily reports whether path is /.well-known/oauth-protected-resource[/…].
func prmFamily(path string) bool {
	return path == resourceguard.WellKnownPRM || strings.HasPrefix(path, resourceguard.WellKnownPRM+"/")
}

// appendedDiscovery reports whether path ends in a discovery name appended
// to another path (/x/.well-known/openid-configuration).
func appendedDiscovery(path string) bool {
	p := strings.ToLower(path)
	for _, wk := range discoveryRoots {
		if i := strings.Index(p, wk); i > 0 && (len(p) == i+len(wk) || p[i+len(wk)] == '/') {
			return true
		}
	}
	return false
}

// prmRegistry records which protected resource metadata paths the
// provisioned guards of one config serve, per resource host, so that a
// handler that sees a PRM path it does not serve can tell a sibling guard's
// path on the same host (pass it on) from an unknown one (JSON 404). It is
// held by the config's mcp_auth app, so two configs (the old and the new one
// during a reload) never see each other's guards. Guards add their paths in
// Provision and remove them in Cleanup.
type prmRegistry struct {
	mu sync.Mutex
	m  map[string]map[string]int // path -> host -> guards
}

func newPRMRegistry() *prmRegistry { return &prmRegistry{m: map[string]map[string]int{}} }

// standalonePRM is the registry of guards in a config without an mcp_auth
// app (every guard then has an external issuer, and no mcp_auth_server
// handler exists to consult it).
var standalonePRM = newPRMRegistry()

func normalizeHost(h string) string {
	h = strings.ToLower(h)
	return strings.TrimSuffix(strings.TrimSuffix(h, ":443"), ":80")
}

// claim records that a guard for a resource on host serves paths, and
// returns the function that forgets it.
func (reg *prmRegistry) claim(host string, paths []string) func() {
	host = normalizeHost(host)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for _, p := range paths {
		if reg.m[p] == nil {
			reg.m[p] = map[string]int{}
		}
		reg.m[p][host]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			reg.mu.Lock()
			defer reg.mu.Unlock()
			for _, p := range paths {
				if reg.m[p][host]--; reg.m[p][host] <= 0 {
					delete(reg.m[p], host)
				}
				if len(reg.m[p]) == 0 {
					delete(reg.m, p)
				}
			}
		})
	}
}

// servedElsewhere reports whether a guard serves the PRM path for the
// request's host. When the request's host is not ownHost (a site that
// answers for several names, or a proxy that rewrites Host), any guard's
// claim counts: never refuse a path that a guard of the site may serve.
func (reg *prmRegistry) servedElsewhere(path, reqHost, ownHost string) bool {
	reqHost, ownHost = normalizeHost(reqHost), normalizeHost(ownHost)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	hosts := reg.m[path]
	if hosts[reqHost] > 0 {
		return true
	}
	return reqHost != ownHost && len(hosts) > 0
}

// nextOrNotFound calls next and writes a JSON 404 when nothing in the rest of
// the chain answered (Caddy would send an empty 200).
func nextOrNotFound(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	tw := &answerTracker{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(tw, r)
	if err == nil && !tw.answered {
		resourceguard.WriteNotFound(w, r)
	}
	return err
}

// answerTracker records whether a response was started.
type answerTracker struct {
	*caddyhttp.ResponseWriterWrapper
	answered bool
}

func (t *answerTracker) WriteHeader(code int) {
	if code >= 200 { // 1xx informational responses do not answer
		t.answered = true
	}
	t.ResponseWriterWrapper.WriteHeader(code)
}

func (t *answerTracker) Write(b []byte) (int, error) {
	t.answered = true
	return t.ResponseWriterWrapper.Write(b)
}

func (t *answerTracker) ReadFrom(r io.Reader) (int64, error) {
	t.answered = true
	return t.ResponseWriterWrapper.ReadFrom(r)
}

// Flush starts the response, as http.ResponseController's does.
func (t *answerTracker) Flush() {
	t.answered = true
	_ = http.NewResponseController(t.ResponseWriterWrapper.ResponseWriter).Flush()
}

// Interface guards
var (
	_ http.Flusher  = (*answerTracker)(nil)
	_ io.ReaderFrom = (*answerTracker)(nil)
)
