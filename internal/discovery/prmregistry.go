package discovery

import (
	"strings"
	"sync"
)

// PRMRegistry records which protected resource metadata paths the
// provisioned guards of one config serve, per resource host, so that a
// handler that sees a PRM path it does not serve can tell a sibling guard's
// path on the same host (pass it on) from an unknown one (JSON 404). It is
// held by the config's mcp_auth app, so two configs (the old and the new one
// during a reload) never see each other's guards. Guards add their paths in
// Provision and remove them in Cleanup.
type PRMRegistry struct {
	mu sync.Mutex
	m  map[string]map[string]int // path -> host -> guards
}

// NewPRMRegistry returns an empty registry.
func NewPRMRegistry() *PRMRegistry { return &PRMRegistry{m: map[string]map[string]int{}} }

func normalizeHost(h string) string {
	h = strings.ToLower(h)
	return strings.TrimSuffix(strings.TrimSuffix(h, ":443"), ":80")
}

// Claim records that a guard for a resource on host serves paths, and
// returns the function that forgets it (idempotent).
func (reg *PRMRegistry) Claim(host string, paths []string) func() {
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

// ServedElsewhere reports whether a guard serves the PRM path for the
// request's host. When the request's host is not ownHost (a site that
// answers for several names, or a proxy that rewrites Host), any guard's
// claim counts: never refuse a path that a guard of the site may serve.
func (reg *PRMRegistry) ServedElsewhere(path, reqHost, ownHost string) bool {
	reqHost, ownHost = normalizeHost(reqHost), normalizeHost(ownHost)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	hosts := reg.m[path]
	if hosts[reqHost] > 0 {
		return true
	}
	return reqHost != ownHost && len(hosts) > 0
}
