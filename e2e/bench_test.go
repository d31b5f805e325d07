package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkGuardVsPlainProxy measures, side by side in one Caddy process and
// one run, a plain reverse_proxy and the same reverse_proxy behind
// mcp_protect, to the same upstream (the sample server's /healthz), with wrk
// at 32 connections over interleaved rounds. It reports the requests/s ratio
// and the ratio of Caddy CPU time per request. It ignores b.N: run it with
//
//	go test ./e2e -run '^$' -bench GuardVsPlainProxy -benchtime 1x
//
// MCPAUTH_BENCH_ROUNDS (default 5) and MCPAUTH_BENCH_SECONDS (default 10)
// tune it. Needs wrk (Debian package wrk).
func BenchmarkGuardVsPlainProxy(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk is required (apt-get install wrk)")
	}
	rounds := envInt("MCPAUTH_BENCH_ROUNDS", 5)
	secs := envInt("MCPAUTH_BENCH_SECONDS", 10)
	plainPort, guardPort := freePort(b), freePort(b)
	var s *stack
	sites := fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	reverse_proxy {TODO}
}

http://127.0.0.1:%[2]d {
	mcp_protect /* {
		resource RESOURCE
	}
	reverse_proxy {TODO}
}
`, plainPort, guardPort)
	// The guard's resource is the main site's MCP URL, so the token minted
	// for it is accepted here too.
	s = startStackWith(b, stackOpts{extraSites: sites}, func(st *stack) string {
		return strings.ReplaceAll(sites, "RESOURCE", st.MCPURL)
	})
	tok := s.login(b, s.oauthConfig("todo:read")).AccessToken
	pid := s.caddy.cmd.Process.Pid

	type result struct{ rps, cpuPerReq float64 }
	// Both sides get the same requests, token included (the plain proxy just
	// forwards it), so the difference is the guard's own work.
	run := func(url string, _ bool) result {
		args := []string{"-t2", "-c32", fmt.Sprintf("-d%ds", secs), "--latency", "-H", "Authorization: Bearer " + tok, url}
		cpu0 := procCPU(b, pid)
		out, err := exec.Command("wrk", args...).CombinedOutput()
		cpu1 := procCPU(b, pid)
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		o := string(out)
		if strings.Contains(o, "Non-2xx") {
			b.Fatalf("wrk saw non-2xx responses:\n%s", o)
		}
		rps := floatAfter(b, o, `Requests/sec:\s+([0-9.]+)`)
		total := floatAfter(b, o, `([0-9]+) requests in`)
		return result{rps: rps, cpuPerReq: (cpu1 - cpu0) / total}
	}
	plainURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", plainPort)
	guardURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", guardPort)
	run(plainURL, false) // warm up both paths
	if out := os.Getenv("MCPAUTH_BENCH_PPROF"); out != "" {
		// A CPU profile of Caddy during one guarded round, for `go tool pprof`.
		done := make(chan error, 1)
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.caddy.admin, secs-1))
			if err != nil {
				done <- err
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(out)
			if err != nil {
				done <- err
				return
			}
			defer f.Close()
			_, err = io.Copy(f, resp.Body)
			done <- err
		}()
		run(guardURL, true)
		if err := <-done; err != nil {
			b.Fatalf("profile: %v", err)
		}
	} else {
		run(guardURL, true)
	}
	var sumPlain, sumGuard, cpuPlain, cpuGuard float64
	for i := 0; i < rounds; i++ {
		p := run(plainURL, false)
		g := run(guardURL, true)
		b.Logf("round %d: plain %.0f req/s (%.1f µs CPU/req), guarded %.0f req/s (%.1f µs CPU/req), ratio %.3f",
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

// procCPU returns the process's user+system CPU seconds from /proc.
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
