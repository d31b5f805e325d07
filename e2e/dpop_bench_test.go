package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// dpopLua makes wrk send, on each thread, the proofs of its share of a file
// of DPoP proofs (one a line), from line offset on: every request a fresh
// proof, as a DPoP client sends.
const dpopLua = `
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local file, offset, nthreads, token = args[1], tonumber(args[2]), tonumber(args[3]), args[4]
  proofs = {}
  local n = 0
  for line in io.lines(file) do
    if n >= offset and (n - offset) % nthreads == id then
      table.insert(proofs, line)
    end
    n = n + 1
  end
  auth = "DPoP " .. token
  i = 0
end
function request()
  i = i + 1
  if i > #proofs then i = 1 end
  return wrk.format("GET", nil, {["Authorization"] = auth, ["DPoP"] = proofs[i]})
end
`

// BenchmarkDPoPGuardVsPlainProxy is BenchmarkGuardVsPlainProxy with a
// DPoP-bound token: both sites get the same requests (Authorization: DPoP
// and a fresh proof each), the guard verifies the token (cached) and the
// proof (one ES256 verification per request), checks ath, the key and the
// jti. Run it with
//
//	go test ./e2e -run '^$' -bench DPoPGuardVsPlainProxy -benchtime 1x -v
//
// MCPAUTH_BENCH_ROUNDS (default 3), MCPAUTH_BENCH_SECONDS (default 5) and
// MCPAUTH_BENCH_PROOFS (proofs per guarded round, default 60000). Needs wrk.
func BenchmarkDPoPGuardVsPlainProxy(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk is required (apt-get install wrk)")
	}
	rounds := envInt("MCPAUTH_BENCH_ROUNDS", 3)
	secs := envInt("MCPAUTH_BENCH_SECONDS", 5)
	perRound := envInt("MCPAUTH_BENCH_PROOFS", 60000)
	const threads = 2
	plainPort, guardPort := freePort(b), freePort(b)
	sites := fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	reverse_proxy {SAMPLE_SERVER}
}

http://127.0.0.1:%[2]d {
	mcp_protect /* {
		resource RESOURCE
		require_dpop
	}
	reverse_proxy {SAMPLE_SERVER}
}
`, plainPort, guardPort)
	s := startStackWith(b, stackOpts{extraSites: sites, extraApp: "dpop"}, func(st *stack) string {
		return strings.ReplaceAll(sites, "RESOURCE", st.MCPURL)
	})
	dc := newDPoPE2EClient(b, s.Client.Transport, s.Issuer+"/token")
	dpopHTTP := &http.Client{Transport: dc, Timeout: 60 * time.Second}
	tok := s.loginWith(b, s.oauthConfig("todo:read"), context.WithValue(context.Background(), oauth2.HTTPClient, dpopHTTP))
	if !strings.EqualFold(tok.TokenType, "DPoP") {
		b.Fatalf("token_type %q", tok.TokenType)
	}
	// The guard checks htu against its configured resource's origin and
	// the request path.
	htu := s.Issuer + "/healthz"
	total := perRound * (rounds + 1)
	file := filepath.Join(b.TempDir(), "proofs")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	t0 := time.Now()
	for i := 0; i < total; i++ {
		fmt.Fprintln(w, dc.proof("GET", htu, tok.AccessToken))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.Logf("%d proofs signed in %s", total, time.Since(t0).Round(time.Millisecond))
	script := filepath.Join(b.TempDir(), "dpop.lua")
	if err := os.WriteFile(script, []byte(dpopLua), 0o644); err != nil {
		b.Fatal(err)
	}
	pid := s.caddy.cmd.Process.Pid
	type result struct{ rps, cpuPerReq, total float64 }
	run := func(url string, offset int) result {
		args := []string{fmt.Sprintf("-t%d", threads), "-c32", fmt.Sprintf("-d%ds", secs), "-s", script, url, "--",
			file, fmt.Sprint(offset), fmt.Sprint(threads), tok.AccessToken}
		cpu0 := procCPU(b, pid)
		out, err := exec.Command("wrk", args...).CombinedOutput()
		cpu1 := procCPU(b, pid)
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		o := string(out)
		if strings.Contains(o, "Non-2xx") {
			b.Fatalf("wrk saw non-2xx responses (out of fresh proofs? raise MCPAUTH_BENCH_PROOFS):\n%s", o)
		}
		n := floatAfter(b, o, `([0-9]+) requests in`)
		return result{rps: floatAfter(b, o, `Requests/sec:\s+([0-9.]+)`), cpuPerReq: (cpu1 - cpu0) / n, total: n}
	}
	plainURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", plainPort)
	guardURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", guardPort)
	// A request through the guard first: the token is verified and cached.
	warm := run(plainURL, 0)
	if g := run(guardURL, 0); g.total > float64(perRound) {
		b.Fatalf("warm-up used %v proofs, more than %d", g.total, perRound)
	}
	_ = warm
	var sumPlain, sumGuard, cpuPlain, cpuGuard float64
	for i := 0; i < rounds; i++ {
		p := run(plainURL, 0) // the plain proxy checks nothing: any proofs do
		g := run(guardURL, (i+1)*perRound)
		if g.total > float64(perRound) {
			b.Fatalf("round %d used %v proofs, more than %d (raise MCPAUTH_BENCH_PROOFS)", i+1, g.total, perRound)
		}
		b.Logf("round %d: plain %.0f req/s (%.1f µs CPU/req), DPoP-guarded %.0f req/s (%.1f µs CPU/req), ratio %.3f",
			i+1, p.rps, p.cpuPerReq*1e6, g.rps, g.cpuPerReq*1e6, g.rps/p.rps)
		sumPlain += p.rps
		sumGuard += g.rps
		cpuPlain += p.cpuPerReq
		cpuGuard += g.cpuPerReq
	}
	b.ReportMetric(sumPlain/float64(rounds), "plain-req/s")
	b.ReportMetric(sumGuard/float64(rounds), "guarded-req/s")
	b.ReportMetric(sumGuard/sumPlain, "rps-ratio")
	b.ReportMetric(cpuGuard/cpuPlain, "cpu-per-req-ratio")
}
