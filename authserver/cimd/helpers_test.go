package cimd

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener records every accepted connection's remote address.
type countingListener struct {
	net.Listener
	mu       sync.Mutex
	accepted []string
	notify   chan struct{}
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted = append(l.accepted, c.RemoteAddr().String())
		l.mu.Unlock()
		select {
		case l.notify <- struct{}{}:
		default:
		}
	}
	return c, err
}

func (l *countingListener) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.accepted...)
}

// assertNoConnection proves that nothing connected to the listener before
// now: it connects a sentinel and waits until the sentinel is accepted; the
// kernel's accept queue is FIFO, so an earlier connection would come first.
func (l *countingListener) assertNoConnection(t *testing.T) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("sentinel dial: %v", err)
	}
	sentinel := c.LocalAddr().String()
	defer c.Close()
	deadline := time.After(10 * time.Second) // a hang guard, not a timing assertion
	for {
		got := l.list()
		for i, a := range got {
			if a == sentinel {
				if i != 0 {
					t.Fatalf("forbidden address received %d connection(s) before the sentinel: %v", i, got[:i])
				}
				return
			}
		}
		select {
		case <-l.notify:
		case <-deadline:
			t.Fatal("sentinel connection never accepted")
		}
	}
}

// testServer is a TLS server on loopback with a counting listener.
type testServer struct {
	*httptest.Server
	ln   *countingListener
	port string
	pool *x509.CertPool
	hits atomic.Int64
}

func newTestServer(t *testing.T, h http.Handler) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	ts.ln = &countingListener{Listener: srv.Listener, notify: make(chan struct{}, 1)}
	srv.Listener = ts.ln
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ts.Server = srv
	_, ts.port, _ = net.SplitHostPort(ts.ln.Addr().String())
	ts.pool = x509.NewCertPool()
	ts.pool.AddCert(srv.Certificate())
	return ts
}

// url builds a client id on the test server under a host name that the
// fake resolver maps to 127.0.0.1 ("example.com" is in httptest's cert).
func (ts *testServer) url(path string) string {
	return "https://example.com:" + ts.port + path
}

func (ts *testServer) addrPort() netip.AddrPort {
	return netip.MustParseAddrPort(ts.ln.Addr().String())
}

// fakeDNS maps names to addresses and counts lookups.
type fakeDNS struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	lookups int
}

func newFakeDNS(pairs ...string) *fakeDNS {
	d := &fakeDNS{names: map[string][]netip.Addr{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		d.names[pairs[i]] = append(d.names[pairs[i]], netip.MustParseAddr(pairs[i+1]))
	}
	return d
}

func (d *fakeDNS) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups++
	if a, ok := d.names[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (d *fakeDNS) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lookups
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// devFetcher is a development-mode fetcher trusting the test server's CA.
func devFetcher(t *testing.T, ts *testServer, dns *fakeDNS, mod func(*FetcherConfig)) *Fetcher {
	t.Helper()
	cfg := FetcherConfig{AllowLoopback: true, ExtraCAs: ts.pool, LookupIP: dns.lookup}
	if mod != nil {
		mod(&cfg)
	}
	f, err := NewFetcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// dials records every address the fetcher was about to connect to.
type dials struct {
	mu    sync.Mutex
	addrs []netip.AddrPort
}

func (d *dials) hook(ap netip.AddrPort) {
	d.mu.Lock()
	d.addrs = append(d.addrs, ap)
	d.mu.Unlock()
}

func (d *dials) list() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.AddrPort(nil), d.addrs...)
}

// doc renders a metadata document.
func doc(clientID string, extra map[string]any) []byte {
	m := map[string]any{
		"client_id":                  clientID,
		"client_name":                "Test Client",
		"redirect_uris":              []string{"http://127.0.0.1/callback"},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// serveJSON answers with body and optional headers.
func serveJSON(body []byte, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

// recordLogs captures slog records.
type recordLogs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLogs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r)
	h.mu.Unlock()
	return nil
}
func (h *recordLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordLogs) WithGroup(string) slog.Handler      { return h }
