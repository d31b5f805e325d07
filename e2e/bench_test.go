package e2e

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchUpstream is a minimal MCP server for the benchmark: it answers
// tools/call with a small result and tools/list with benchTools tools, as
// JSON on /mcp and as an SSE stream (a progress notification, then the
// result) on /mcp/sse. Answers are rendered once.
func benchUpstream(b *testing.B) string {
	var tools []string
	for i := range benchTools {
		scopeHint := "read"
		switch i % 4 {
		case 1:
			scopeHint = "write"
		case 2:
			scopeHint = "admin"
		}
		tools = append(tools, fmt.Sprintf(`{"name":"tool_%02d","title":"Tool %d","description":"A %s tool of the benchmark, with a description of ordinary length for an MCP server.","inputSchema":{"type":"object","properties":{"id":{"type":"string"},"text":{"type":"string"}},"required":["id"]}}`, i, i, scopeHint))
	}
	listResult := `{"jsonrpc":"2.0","id":1,"result":{"tools":[` + strings.Join(tools, ",") + `]}}`
	callResult := `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"added todo 42: buy milk"}],"isError":false}}`
	progress := `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"total":2}}`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res := callResult
		if strings.Contains(string(body), `"tools/list"`) {
			res = listResult
		}
		if strings.HasSuffix(r.URL.Path, "/sse") {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = io.WriteString(w, "event: message\ndata: "+progress+"\n\n")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "event: message\ndata: "+res+"\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(res)))
		_, _ = io.WriteString(w, res)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// benchTools is the number of tools the benchmark's upstream lists; half
// of them need todo:write (hidden from the todo:read token when the guard
// filters). A scope no token can carry would be refused by the adapter.
const benchTools = 20

// benchWorkload is one kind of request the benchmark sends.
type benchWorkload struct {
	name   string
	path   string // /mcp (JSON answers) or /mcp/sse
	method string
	tool   string // Mcp-Name of tools/call
	tokens int    // distinct tokens, used round-robin
}

func (w benchWorkload) body() string {
	if w.method == "tools/list" {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":{"id":"42","text":"buy milk"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, w.tool)
}

// script is wrk's Lua script: a 2026-07-28 POST with the metadata headers
// (so the guard validates them against the body), the tokens of tokenFile
// in turn.
func (w benchWorkload) script(tokenFile string) string {
	name := ""
	if w.tool != "" {
		name = fmt.Sprintf("wrk.headers[\"Mcp-Name\"] = %q\n", w.tool)
	}
	return fmt.Sprintf(`wrk.method = "POST"
wrk.body = %q
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = %q
%stokens = {}
for line in io.lines(%q) do tokens[#tokens + 1] = line end
local i = math.random(#tokens)
request = function()
  i = i %% #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format()
end
`, w.body(), w.method, name, tokenFile)
}

var benchWorkloads = []benchWorkload{
	{name: "call-json-1", path: "/mcp", method: "tools/call", tool: "tool_00", tokens: 1},
	{name: "call-json-1000", path: "/mcp", method: "tools/call", tool: "tool_00", tokens: 1000},
	{name: "call-sse-1", path: "/mcp/sse", method: "tools/call", tool: "tool_00", tokens: 1},
	{name: "call-sse-1000", path: "/mcp/sse", method: "tools/call", tool: "tool_00", tokens: 1000},
	{name: "list-json-1", path: "/mcp", method: "tools/list", tokens: 1},
	{name: "list-json-1000", path: "/mcp", method: "tools/list", tokens: 1000},
	{name: "list-sse-1", path: "/mcp/sse", method: "tools/list", tokens: 1},
	{name: "list-sse-1000", path: "/mcp/sse", method: "tools/list", tokens: 1000},
}

// BenchmarkGuardVsPlainProxy measures, side by side in one Caddy process and
// one run, a plain reverse_proxy and the same reverse_proxy behind
// mcp_protect (per-tool scopes, so the guard reads every body, validates the
// Mcp-Method/Mcp-Name headers and filters tools/list), to the same upstream.
// By default neither site has a matcher, as on a host that serves only MCP:
// Caddy merges mcp_protect and reverse_proxy into one route, so the
// difference is the guard's work, not Caddy's routing.
// MCPAUTH_BENCH_MATCHER=<path> (e.g. /mcp*) puts that path matcher on every
// directive instead, as on a host shared with other paths: the guard's route
// then also matches the discovery paths, so Caddy cannot merge it with
// reverse_proxy's and the guarded site has two routes, which Caddy compiles
// on every request (that cost is Caddy's, measured apart in BENCHMARKS.md).
// The workloads are what MCP clients send: tools/call and tools/list POSTs of MCP
// 2026-07-28 answered as JSON or SSE, with 1 and 1,000 distinct tokens. wrk
// runs at 32 connections; each round runs plain and guarded for the same
// seconds, in slices that alternate plain, guarded, guarded, plain, …
// It reports, per workload, the mean of the rounds' requests/s and
// CPU-per-request ratios and their spread (the half-width of the 95%
// confidence interval of the mean), and the machine's steal time (a
// virtual machine's "idle" is not only its own). It ignores b.N: run it with
//
//	go test ./e2e -run '^$' -bench GuardVsPlainProxy -benchtime 1x -v
//
// MCPAUTH_BENCH_ROUNDS (default 10), MCPAUTH_BENCH_SECONDS (default 5),
// MCPAUTH_BENCH_SLICE (seconds, default 1) and MCPAUTH_BENCH_WORKLOADS
// (comma-separated names, default all) tune it;
// MCPAUTH_BENCH_PPROF=<file> writes a CPU profile of Caddy during the guarded
// side of MCPAUTH_BENCH_PPROF_WORKLOAD (default call-json-1000), and one of
// the plain side to <file>.plain (MCPAUTH_BENCH_PPROF_KIND=allocs: the
// allocations made in that time instead, for -sample_index=alloc_space or
// alloc_objects; MCPAUTH_BENCH_PPROF_WINDOWS=<n>: n windows a side,
// alternating, merged). Needs wrk
// (Debian package wrk).
func BenchmarkGuardVsPlainProxy(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk is required (apt-get install wrk)")
	}
	rounds := envInt("MCPAUTH_BENCH_ROUNDS", 10)
	secs := envInt("MCPAUTH_BENCH_SECONDS", 5)
	slice := envInt("MCPAUTH_BENCH_SLICE", 1)
	workloads := benchWorkloads
	if only := os.Getenv("MCPAUTH_BENCH_WORKLOADS"); only != "" {
		workloads = nil
		for _, w := range benchWorkloads {
			if slices.Contains(strings.Split(only, ","), w.name) {
				workloads = append(workloads, w)
			}
		}
	}
	upstream := benchUpstream(b)
	plainPort, guardPort := freePort(b), freePort(b)
	matcher := os.Getenv("MCPAUTH_BENCH_MATCHER")
	if matcher != "" && !strings.HasPrefix(matcher, "/") {
		b.Fatalf("MCPAUTH_BENCH_MATCHER=%q: want a path such as /mcp*", matcher)
	}
	if matcher != "" {
		matcher += " "
	}
	sites := fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	reverse_proxy %[4]s%[3]s {
		flush_interval -1
	}
}

http://127.0.0.1:%[2]d {
	mcp_protect %[4]s{
		resource RESOURCE
		scopes todo:read
		method_scope tools/call:tool_01 todo:write
		method_scope tools/call:tool_05 todo:write
		method_scope tools/call:tool_09 todo:write
		method_scope tools/call:tool_13 todo:write
		method_scope tools/call:tool_17 todo:write
		method_scope tools/call:tool_02 todo:write
		method_scope tools/call:tool_06 todo:write
		method_scope tools/call:tool_10 todo:write
		method_scope tools/call:tool_14 todo:write
		method_scope tools/call:tool_18 todo:write
	}
	reverse_proxy %[4]s%[3]s {
		flush_interval -1
	}
}
`, plainPort, guardPort, upstream, matcher)
	if matcher == "" {
		b.Logf("sites without a matcher: the guarded site is one route (mcp_protect, reverse_proxy)")
	} else {
		b.Logf("every directive with the matcher %s: the guarded site is two routes", strings.TrimSpace(matcher))
	}
	// The guard's resource is the main site's MCP URL, so the tokens minted
	// for it are accepted here too.
	s := startStackWith(b, stackOpts{extraSites: sites, extraApp: "token_rate_limit off"}, func(st *stack) string {
		return strings.ReplaceAll(sites, "RESOURCE", st.MCPURL)
	})
	dir := b.TempDir()
	tokenFiles := benchTokens(b, s, dir, 1000)
	pid := s.caddy.cmd.Process.Pid

	type result struct{ rps, cpuPerReq, reqs, cpu float64 }
	// Both sides get the same requests, tokens included (the plain proxy
	// just forwards them), so the difference is the guard's own work.
	runFor := func(w benchWorkload, port, secs int) result {
		script := filepath.Join(dir, w.name+".lua")
		if err := os.WriteFile(script, []byte(w.script(tokenFiles[w.tokens])), 0o600); err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d%s", port, w.path)
		args := []string{"-t2", "-c32", fmt.Sprintf("-d%ds", secs), "-s", script, url}
		cpu0 := procCPU(b, pid)
		out, err := exec.Command("wrk", args...).CombinedOutput()
		cpu1 := procCPU(b, pid)
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		o := string(out)
		if strings.Contains(o, "Non-2xx") || strings.Contains(o, "Socket errors") {
			b.Fatalf("%s on port %d: wrk saw errors:\n%s", w.name, port, o)
		}
		rps := floatAfter(b, o, `Requests/sec:\s+([0-9.]+)`)
		total := floatAfter(b, o, `([0-9]+) requests in`)
		return result{rps: rps, cpuPerReq: (cpu1 - cpu0) / total, reqs: total, cpu: cpu1 - cpu0}
	}
	run := func(w benchWorkload, port int) result { return runFor(w, port, secs) }
	// measure is one round of a workload: each side runs secs seconds in
	// slices of slice seconds, alternating plain-guarded-guarded-plain, so
	// that the machine's drift (its speed changes within seconds here)
	// falls on both sides alike. It returns each side's totals.
	measure := func(w benchWorkload, round int) (p, g result) {
		var pw, gw float64 // seconds of wrk time
		add := func(sum *result, wall *float64, r result) {
			sum.reqs += r.reqs
			sum.cpu += r.cpu
			*wall += r.reqs / r.rps
		}
		n := max(secs/slice, 1)
		for j := 0; j < n; j++ {
			if (round+j)%2 == 0 {
				add(&p, &pw, runFor(w, plainPort, slice))
				add(&g, &gw, runFor(w, guardPort, slice))
			} else {
				add(&g, &gw, runFor(w, guardPort, slice))
				add(&p, &pw, runFor(w, plainPort, slice))
			}
		}
		p.rps, p.cpuPerReq = p.reqs/pw, p.cpu/p.reqs
		g.rps, g.cpuPerReq = g.reqs/gw, g.cpu/g.reqs
		return p, g
	}
	checkFiltered(b, s, plainPort, guardPort, tokenFiles[1])
	for _, w := range workloads {
		// Warm up both paths (and fill the guard's token cache).
		run(w, plainPort)
		run(w, guardPort)
	}
	if out := os.Getenv("MCPAUTH_BENCH_PPROF"); out != "" {
		name := os.Getenv("MCPAUTH_BENCH_PPROF_WORKLOAD")
		if name == "" {
			name = "call-json-1000"
		}
		i := slices.IndexFunc(benchWorkloads, func(w benchWorkload) bool { return w.name == name })
		if i < 0 {
			b.Fatalf("no workload %q", name)
		}
		// Both sides, so `go tool pprof -diff_base <file>.plain <file>`
		// shows what the guard adds; in MCPAUTH_BENCH_PPROF_WINDOWS windows
		// each (default 1), alternating guarded-plain, plain-guarded, …,
		// merged, so that the machine's drift falls on both sides alike.
		windows := envInt("MCPAUTH_BENCH_PPROF_WINDOWS", 1)
		sides := []struct {
			port  int
			file  string
			parts []string
			sum   result
		}{{port: guardPort, file: out}, {port: plainPort, file: out + ".plain"}}
		for k := 0; k < windows; k++ {
			for j := range sides {
				if k%2 == 1 {
					j = len(sides) - 1 - j
				}
				side := &sides[j]
				part := fmt.Sprintf("%s.part%d", side.file, k)
				done := make(chan error, 1)
				go func() { done <- fetchProfile(s.caddy.admin, max(secs-1, 1), part) }()
				res := run(benchWorkloads[i], side.port)
				if err := <-done; err != nil {
					b.Fatalf("profile: %v", err)
				}
				side.parts = append(side.parts, part)
				side.sum.reqs += res.reqs
				side.sum.cpu += res.cpu
				side.sum.rps += res.rps / float64(windows)
			}
		}
		for _, side := range sides {
			if err := mergeProfiles(side.file, side.parts); err != nil {
				b.Fatalf("profile: %v", err)
			}
			// The rate, to turn the profile's seconds into time per request.
			b.Logf("profile %s (%d windows): %.0f req/s, %.1f µs CPU/req", side.file, windows,
				side.sum.rps, side.sum.cpu/side.sum.reqs*1e6)
		}
	}
	type series struct{ rps, cpu []float64 }
	res := make([]series, len(workloads))
	// Rounds outermost: every workload is measured throughout the run, so a
	// burst of load from elsewhere on the machine hits them all alike.
	// The hypervisor's steal time: on a shared virtual machine it says
	// whether "otherwise idle" held (the guest's own load is not all).
	var stealSum, allSum float64
	for round := 0; round < rounds; round++ {
		for i, w := range workloads {
			st0, all0 := machineSteal(b)
			p, g := measure(w, round)
			st1, all1 := machineSteal(b)
			stolen := 100 * (st1 - st0) / max(all1-all0, 1)
			stealSum, allSum = stealSum+st1-st0, allSum+all1-all0
			b.Logf("%-15s round %2d: plain %6.0f req/s %6.1f µs CPU/req, guarded %6.0f req/s %6.1f µs CPU/req: req/s %.3f, CPU/req %.3f; steal %.0f %%",
				w.name, round+1, p.rps, p.cpuPerReq*1e6, g.rps, g.cpuPerReq*1e6, g.rps/p.rps, g.cpuPerReq/p.cpuPerReq, stolen)
			res[i].rps = append(res[i].rps, g.rps/p.rps)
			res[i].cpu = append(res[i].cpu, g.cpuPerReq/p.cpuPerReq)
		}
	}
	b.Logf("steal: %.1f %% of the machine's CPU time during the rounds", 100*stealSum/max(allSum, 1))
	for i, w := range workloads {
		rm, rs := meanSpread(res[i].rps)
		cm, cs := meanSpread(res[i].cpu)
		b.Logf("%-15s req/s ratio %.3f ± %.3f, CPU/req ratio %.3f ± %.3f (%d rounds; per-round req/s %.2f–%.2f)",
			w.name, rm, rs, cm, cs, rounds, slices.Min(res[i].rps), slices.Max(res[i].rps))
		b.ReportMetric(rm, w.name+"-rps-ratio")
		b.ReportMetric(cm, w.name+"-cpu-ratio")
	}
}

// meanSpread returns the mean of xs and the half-width of its 95%
// confidence interval (Student's t for the number of rounds).
func meanSpread(xs []float64) (mean, spread float64) {
	n := float64(len(xs))
	for _, x := range xs {
		mean += x
	}
	mean /= n
	if len(xs) < 2 {
		return mean, math.Inf(1)
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / (n - 1))
	// Two-sided 95% t quantiles for 1..29 degrees of freedom; 1.96 beyond.
	tq := []float64{12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13,
		2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05}
	t := 1.96
	if df := len(xs) - 1; df <= len(tq) {
		t = tq[df-1]
	}
	return mean, t * sd / math.Sqrt(n)
}

// benchTokens logs in once (todo:read, offline_access) and refreshes until
// it holds n distinct access tokens; it writes files of 1 and n tokens, one
// a line, and returns their paths by count.
func benchTokens(b *testing.B, s *stack, dir string, n int) map[int]string {
	tok := s.login(b, s.oauthConfig("todo:read", "offline_access"))
	toks := []string{tok.AccessToken}
	rt := tok.RefreshToken
	for len(toks) < n {
		st, _, body := postForm(b, s.Client, s.Issuer+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {cliClientID}})
		at, _ := body["access_token"].(string)
		next, _ := body["refresh_token"].(string)
		if st != 200 || at == "" || next == "" {
			b.Fatalf("refresh %d: %d %v", len(toks), st, body)
		}
		toks = append(toks, at)
		rt = next
	}
	files := map[int]string{}
	for _, k := range []int{1, n} {
		p := filepath.Join(dir, fmt.Sprintf("tokens-%d.txt", k))
		if err := os.WriteFile(p, []byte(strings.Join(toks[:k], "\n")+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		files[k] = p
	}
	return files
}

// checkFiltered makes sure the benchmark measures what it claims: the
// guarded side filters tools/list (todo:read sees half the tools), the plain
// side does not, and a mismatched Mcp-Name is refused by the guard only.
func checkFiltered(b *testing.B, s *stack, plainPort, guardPort int, tokenFile string) {
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		b.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	post := func(port int, path, body, method, name string) (int, string) {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", method)
		if name != "" {
			req.Header.Set("Mcp-Name", name)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	list := benchWorkload{method: "tools/list"}.body()
	for _, path := range []string{"/mcp", "/mcp/sse"} {
		_, plain := post(plainPort, path, list, "tools/list", "")
		_, guarded := post(guardPort, path, list, "tools/list", "")
		if n := strings.Count(plain, `"name":"tool_`); n != benchTools {
			b.Fatalf("plain %s lists %d tools", path, n)
		}
		if n := strings.Count(guarded, `"name":"tool_`); n != benchTools/2 {
			b.Fatalf("guarded %s lists %d tools, want %d:\n%s", path, n, benchTools/2, guarded)
		}
	}
	call := benchWorkload{method: "tools/call", tool: "tool_00"}.body()
	if st, body := post(guardPort, "/mcp", call, "tools/call", "tool_02"); st != 400 || !strings.Contains(body, "-32020") {
		b.Fatalf("mismatched Mcp-Name: %d %s", st, body)
	}
}

// mergeProfiles writes the profiles parts into out, one profile (a single
// part is renamed), and removes the parts.
func mergeProfiles(out string, parts []string) error {
	if len(parts) == 1 {
		return os.Rename(parts[0], out)
	}
	merged, err := exec.Command("go", append([]string{"tool", "pprof", "-proto"}, parts...)...).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof -proto: %w", err)
	}
	if err := os.WriteFile(out, merged, 0o600); err != nil {
		return err
	}
	for _, p := range parts {
		_ = os.Remove(p)
	}
	return nil
}

func fetchProfile(admin string, secs int, out string) error {
	kind := "profile"
	if os.Getenv("MCPAUTH_BENCH_PPROF_KIND") == "allocs" {
		kind = "allocs" // with seconds: a delta, what was allocated meanwhile
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", admin, kind, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// procCPU returns the process's user+system CPU seconds from /proc.
// machineSteal returns the machine's steal time and all its CPU time, in
// ticks, from /proc/stat's first line (user nice system idle iowait irq
// softirq steal …).
func machineSteal(b *testing.B) (steal, all float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	for i, f := range fields[1:9] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q: %v", line, err)
		}
		all += v
		if i == 7 {
			steal = v
		}
	}
	return steal, all
}

func procCPU(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func floatAfter(b *testing.B, s, re string) float64 {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		b.Fatalf("%q not found in:\n%s", re, s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
