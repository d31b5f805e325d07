package cimd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"golang.org/x/time/rate"
)

// Defaults of FetcherConfig.
const (
	DefaultMaxBytes      = 5120 // draft §8.7: "The recommended maximum size to read is 5 kilobytes."
	DefaultDialTimeout   = 3 * time.Second
	DefaultTLSTimeout    = 5 * time.Second
	DefaultHeaderTimeout = 5 * time.Second
	DefaultTotalTimeout  = 10 * time.Second
	// DefaultUntrustedTimeout bounds a whole fetch from a host outside the
	// trusted hosts (policy any): a tarpit holds a slot this long at most.
	DefaultUntrustedTimeout   = 3 * time.Second
	DefaultPerHostRate        = 1.0 // fetches per second, sustained
	DefaultPerHostBurst       = 10
	DefaultPerHostConcurrency = 4
	// Per registrable domain (eTLD+1): many hosts of one domain share it.
	DefaultPerDomainRate        = 2.0
	DefaultPerDomainBurst       = 20
	DefaultPerDomainConcurrency = 4
	// Per requester (client IP; IPv6 by /64): one source cannot drain a
	// host's bucket on its own (burst and rate below the host's).
	DefaultPerRequesterRate        = 0.2
	DefaultPerRequesterBurst       = 5
	DefaultPerRequesterConcurrency = 2
	DefaultMaxConcurrency          = 32
	// DefaultReservedConcurrency slots are kept, beyond MaxConcurrency, for
	// refetches of client ids that resolved successfully before.
	DefaultReservedConcurrency = 8
	// defaultRetryAfter is suggested after a transient failure that no
	// budget or negative cache times more precisely.
	defaultRetryAfter = 5 * time.Second
	// maxAddrs bounds how many resolved addresses are considered.
	maxAddrs = 16
	// userAgent identifies the fetcher to document hosts.
	userAgent = "caddy-mcpauth-cimd/1"
)

// FetcherConfig configures a Fetcher. Zero fields take the defaults above.
type FetcherConfig struct {
	// MaxBytes caps the document size (default 5120). A larger body, or a
	// Content-Length above it, is refused.
	MaxBytes int64
	// DialTimeout bounds the TCP connection (default 3s).
	DialTimeout time.Duration
	// TLSTimeout bounds the TLS handshake (default 5s).
	TLSTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers (default 5s).
	HeaderTimeout time.Duration
	// TotalTimeout bounds the whole fetch, body included (default 10s), for
	// trusted hosts (and for Fetch).
	TotalTimeout time.Duration
	// UntrustedTimeout bounds the whole fetch from a host that is not among
	// the resolver's trusted hosts (default 3s; never above TotalTimeout).
	UntrustedTimeout time.Duration
	// PerHostRate is the sustained number of fetches per second allowed to
	// one host (default 1); PerHostBurst the burst (default 10).
	PerHostRate  float64
	PerHostBurst int
	// PerHostConcurrency caps simultaneous fetches to one host (default 4).
	// Over the limit a fetch is refused at once, never queued.
	PerHostConcurrency int
	// PerDomainRate, PerDomainBurst and PerDomainConcurrency are the same
	// budget per registrable domain (defaults 2/s, 20, 4).
	PerDomainRate        float64
	PerDomainBurst       int
	PerDomainConcurrency int
	// PerRequesterRate, PerRequesterBurst and PerRequesterConcurrency are
	// the same budget per requester IP, IPv6 by /64 (defaults 0.2/s, 5, 2).
	PerRequesterRate        float64
	PerRequesterBurst       int
	PerRequesterConcurrency int
	// RequesterPrefixes says which leading bits of the requester's address
	// share a budget (defaults: IPv4 /32, IPv6 /64), as for every budget.
	RequesterPrefixes abuse.Prefixes
	// MaxConcurrency caps simultaneous fetches to all hosts together
	// (default 32): with policy "any", anyone can name fresh hosts.
	MaxConcurrency int
	// ReservedConcurrency slots (default 8) are added for refetches of
	// client ids that resolved before: junk never takes them.
	ReservedConcurrency int
	// ExtraCAs are trusted in addition to the system roots (private PKI).
	ExtraCAs *x509.CertPool
	// AllowLoopback is for development only and MUST NOT be set in
	// production: it lets the fetcher connect to loopback addresses
	// (127.0.0.0/8, ::1) and accept IP-literal client ids. Every other
	// special-use range stays refused. NewFetcher logs a warning.
	AllowLoopback bool
	// LookupIP resolves a host name (tests inject a fake). Nil uses
	// net.DefaultResolver.LookupNetIP with network "ip".
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
	// Now is the clock for rate limits and FetchedAt; nil means time.Now.
	Now func() time.Time
	// Logger receives construction warnings and per-fetch debug lines;
	// nil discards.
	Logger *slog.Logger
}

// Fetcher retrieves Client ID Metadata Documents safely against SSRF
// (draft §5 and §8.6): https only; no proxy; no redirect followed (any 3xx is
// an error); every connection goes to an address checked after DNS
// resolution, once before dialling and again on the socket about to connect
// (so DNS rebinding cannot slip a private address in); dial, TLS, header and
// total timeouts; a read cap; only 200 with Content-Type application/json
// and no Content-Encoding; per-host rate and concurrency limits.
//
// A Fetcher is safe for concurrent use.
type Fetcher struct {
	cfg       FetcherConfig
	client    *http.Client
	transport *http.Transport
	lookup    func(ctx context.Context, host string) ([]netip.Addr, error)
	now       func() time.Time
	log       *slog.Logger
	limits    *fetchLimits
	// allowAddr decides which dialled addresses are reachable. Tests in this
	// package replace it to reach one exact test listener in production mode.
	allowAddr func(netip.AddrPort) bool
	// onDial, when set (tests), sees every address about to be dialled.
	onDial func(netip.AddrPort)
}

// Response is a document as fetched: the raw body (at most MaxBytes) and
// the response headers that matter for caching.
type Response struct {
	Body      []byte
	Header    http.Header
	FetchedAt time.Time
}

// errRedirect is returned by CheckRedirect: no redirect is ever followed.
var errRedirect = errors.New("cimd: redirect not followed")

// NewFetcher builds a Fetcher. It refuses negative limits.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	for _, n := range []float64{float64(cfg.MaxBytes), float64(cfg.DialTimeout), float64(cfg.TLSTimeout), float64(cfg.HeaderTimeout),
		float64(cfg.TotalTimeout), float64(cfg.UntrustedTimeout), cfg.PerHostRate, float64(cfg.PerHostBurst), float64(cfg.PerHostConcurrency),
		cfg.PerDomainRate, float64(cfg.PerDomainBurst), float64(cfg.PerDomainConcurrency),
		cfg.PerRequesterRate, float64(cfg.PerRequesterBurst), float64(cfg.PerRequesterConcurrency),
		float64(cfg.MaxConcurrency), float64(cfg.ReservedConcurrency)} {
		if n < 0 {
			return nil, errors.New("cimd: fetcher limits must not be negative")
		}
	}
	setDefault(&cfg.MaxBytes, DefaultMaxBytes)
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.TLSTimeout, DefaultTLSTimeout)
	setDefault(&cfg.HeaderTimeout, DefaultHeaderTimeout)
	setDefault(&cfg.TotalTimeout, DefaultTotalTimeout)
	setDefault(&cfg.UntrustedTimeout, DefaultUntrustedTimeout)
	cfg.UntrustedTimeout = min(cfg.UntrustedTimeout, cfg.TotalTimeout)
	setDefault(&cfg.PerHostRate, DefaultPerHostRate)
	setDefault(&cfg.PerHostBurst, DefaultPerHostBurst)
	setDefault(&cfg.PerHostConcurrency, DefaultPerHostConcurrency)
	setDefault(&cfg.PerDomainRate, DefaultPerDomainRate)
	setDefault(&cfg.PerDomainBurst, DefaultPerDomainBurst)
	setDefault(&cfg.PerDomainConcurrency, DefaultPerDomainConcurrency)
	setDefault(&cfg.PerRequesterRate, DefaultPerRequesterRate)
	setDefault(&cfg.PerRequesterBurst, DefaultPerRequesterBurst)
	setDefault(&cfg.PerRequesterConcurrency, DefaultPerRequesterConcurrency)
	setDefault(&cfg.MaxConcurrency, DefaultMaxConcurrency)
	setDefault(&cfg.ReservedConcurrency, DefaultReservedConcurrency)
	f := &Fetcher{
		cfg:    cfg,
		lookup: cfg.LookupIP,
		now:    cfg.Now,
		log:    cfg.Logger,
	}
	if f.lookup == nil {
		f.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.allowAddr = f.defaultAllowAddr
	f.limits = newFetchLimits(limitsConfig{
		requester: limitSpec{rate: rate.Limit(cfg.PerRequesterRate), burst: cfg.PerRequesterBurst, conc: cfg.PerRequesterConcurrency},
		domain:    limitSpec{rate: rate.Limit(cfg.PerDomainRate), burst: cfg.PerDomainBurst, conc: cfg.PerDomainConcurrency},
		host:      limitSpec{rate: rate.Limit(cfg.PerHostRate), burst: cfg.PerHostBurst, conc: cfg.PerHostConcurrency},
		general:   cfg.MaxConcurrency,
		reserved:  cfg.ReservedConcurrency,
	})

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ExtraCAs != nil {
		extra := cfg.ExtraCAs
		// The chain is verified in VerifyConnection against the system
		// roots, then against ExtraCAs; verification is never skipped.
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyConnection below
		tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, extra) }
	}
	dialer := &net.Dialer{
		Timeout:   cfg.DialTimeout,
		KeepAlive: 30 * time.Second,
		// ControlContext runs on the socket about to connect, after name
		// resolution: the last word on which address is reachable.
		ControlContext: f.control,
	}
	f.transport = &http.Transport{
		Proxy: nil, // never a proxy: it would connect on our behalf, unchecked
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return f.dial(ctx, dialer, network, addr)
		},
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    cfg.TLSTimeout,
		ResponseHeaderTimeout:  cfg.HeaderTimeout,
		DisableCompression:     true, // a gzip body is refused, never inflated
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 32 << 10,
	}
	f.client = &http.Client{
		Transport: httpsOnly{f.transport},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errRedirect
		},
		Timeout: cfg.TotalTimeout,
	}
	if cfg.AllowLoopback {
		f.log.Warn("cimd: DEVELOPMENT MODE: metadata documents may be fetched from loopback addresses; this MUST NOT be enabled in production",
			"allow_loopback", true)
	}
	return f, nil
}

// control is the dialer's ControlContext: it runs on the socket about to
// connect, with the numeric address actually dialled.
func (f *Fetcher) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !f.allowAddr(ap) {
		return ErrForbiddenAddress
	}
	return nil
}

// Close releases idle connections.
func (f *Fetcher) Close() { f.transport.CloseIdleConnections() }

// AllowsLoopback reports whether the development loopback exception is on.
func (f *Fetcher) AllowsLoopback() bool { return f.cfg.AllowLoopback }

// defaultAllowAddr is the production rule (public unicast only) plus the
// development loopback exception when configured.
func (f *Fetcher) defaultAllowAddr(ap netip.AddrPort) bool {
	ip := ap.Addr()
	if IsPublicAddr(ip) {
		return true
	}
	return f.cfg.AllowLoopback && isLoopbackAddr(ip)
}

// dial resolves addr, refuses the whole host when any resolved address is
// not allowed (a name that mixes public and private addresses is hostile),
// and connects to the allowed addresses in order.
func (f *Fetcher) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("cimd: bad port: %w", err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = f.lookup(ctx, host)
		if err != nil {
			return nil, &net.OpError{Op: "lookup", Net: network, Err: err}
		}
	}
	if len(ips) == 0 {
		return nil, &net.OpError{Op: "lookup", Net: network, Err: errors.New("no addresses")}
	}
	if len(ips) > maxAddrs {
		ips = ips[:maxAddrs]
	}
	aps := make([]netip.AddrPort, len(ips))
	for i, ip := range ips {
		aps[i] = netip.AddrPortFrom(ip.Unmap(), uint16(port))
		if !f.allowAddr(aps[i]) {
			return nil, &net.OpError{Op: "dial", Net: network, Err: ErrForbiddenAddress}
		}
	}
	var lastErr error
	for _, ap := range aps {
		nw := "tcp4"
		if ap.Addr().Is6() {
			nw = "tcp6"
		}
		if f.onDial != nil {
			f.onDial(ap)
		}
		conn, err := d.DialContext(ctx, nw, ap.String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil || errors.Is(err, ErrForbiddenAddress) {
			break
		}
	}
	return nil, lastErr
}

// httpsOnly refuses any request that is not https, whatever built it.
type httpsOnly struct{ rt http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil || r.URL.Scheme != "https" {
		return nil, errors.New("cimd: only https is fetched")
	}
	return h.rt.RoundTrip(r)
}

// verifyChain verifies the server certificate against the system roots and,
// failing that, against extra.
func verifyChain(cs tls.ConnectionState, extra *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("cimd: no server certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter}
	_, sysErr := cs.PeerCertificates[0].Verify(opts)
	if sysErr == nil {
		return nil
	}
	opts.Roots = extra
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return err
	}
	return nil
}

// Fetch retrieves the document at clientID. clientID must be a valid Client
// Identifier URL (IP literals only in development mode); otherwise the error
// wraps ErrInvalidClientID and nothing is sent. Other failures wrap ErrFetch
// with a short, safe reason. Fetch is charged to an anonymous requester and
// uses the trusted-host timeout; the Resolver charges the real requester.
func (f *Fetcher) Fetch(ctx context.Context, clientID string) (*Response, error) {
	return f.fetchAs(ctx, clientID, fetchClass{trusted: true})
}

// fetchClass says whom a fetch is charged to and how long it may take.
type fetchClass struct {
	requester string // the requester's IP ("" unknown: no requester budget)
	known     bool   // the client id resolved successfully before
	trusted   bool   // the host is among the trusted hosts
	jwks      bool   // a JWK set (jwks_uri), not a metadata document
}

func (f *Fetcher) fetchAs(ctx context.Context, clientID string, class fetchClass) (*Response, error) {
	if err := validClientIDURL(clientID, f.cfg.AllowLoopback); err != nil {
		return nil, err
	}
	host := hostOf(clientID)
	requester := ""
	if class.requester != "" {
		requester = f.cfg.RequesterPrefixes.Key(class.requester)
	}
	release, err := f.limits.acquire(fetchKeys{
		requester: requester,
		domain:    registrableDomain(host),
		host:      host,
		known:     class.known,
	}, f.now())
	if err != nil {
		var wait time.Duration
		if le := (*limitError)(nil); errors.As(err, &le) {
			wait = le.wait
		}
		f.log.Debug("cimd: fetch refused", "host", host, "reason", err.Error())
		return nil, &fetchError{reason: err.Error(), kind: ErrRateLimited, temporary: true, retry: wait}
	}
	defer release()

	timeout := f.cfg.TotalTimeout
	if !class.trusted {
		timeout = f.cfg.UntrustedTimeout
	}
	maxBytes, types := f.cfg.MaxBytes, documentTypes
	if class.jwks {
		maxBytes, types = MaxJWKSBytes, jwksTypes
	}
	resp, err := f.fetch(ctx, clientID, timeout, maxBytes, types)
	if err != nil {
		var fe *fetchError
		if errors.As(err, &fe) {
			f.log.Debug("cimd: fetch failed", "host", host, "reason", fe.reason, "error", fe.cause)
		}
		return nil, err
	}
	return resp, nil
}

// Media types accepted: documents are application/json; a JWK set may also
// be application/jwk-set+json (RFC 7517 §8.5.1).
var (
	documentTypes = []string{"application/json"}
	jwksTypes     = []string{"application/json", "application/jwk-set+json"}
)

func (f *Fetcher) fetch(ctx context.Context, clientID string, timeout time.Duration, maxBytes int64, types []string) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: bad request url", ErrInvalidClientID)
	}
	req.Header.Set("Accept", strings.Join(types, ", "))
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", userAgent)

	resp, err := f.client.Do(req)
	if err != nil {
		return nil, classifyTransportError(err)
	}
	defer resp.Body.Close()

	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, &fetchError{reason: "redirect not followed"}
	}
	if resp.StatusCode != http.StatusOK {
		// 5xx, 408 and 429 may pass; any other status is the host's answer.
		st := resp.StatusCode
		return nil, &fetchError{reason: "status " + strconv.Itoa(st), temporary: st >= 500 || st == http.StatusRequestTimeout || st == http.StatusTooManyRequests}
	}
	if ce := strings.TrimSpace(resp.Header.Get("Content-Encoding")); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, &fetchError{reason: "content encoding not accepted"}
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(types, mt) {
		return nil, &fetchError{reason: "content type is not " + strings.Join(types, " or ")}
	}
	tooLarge := fmt.Sprintf("document larger than %d bytes", maxBytes)
	if resp.ContentLength > maxBytes {
		return nil, &fetchError{reason: tooLarge, kind: ErrTooLarge}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err == nil {
		// The whole fetch must finish inside the deadline. A host can end
		// its response cleanly in answer to the close we send at the
		// deadline (TLS close_notify), and the transport may then deliver
		// that ending as a clean EOF: still a timeout.
		err = ctx.Err()
	}
	if err != nil {
		return nil, classifyTransportError(err)
	}
	if int64(len(body)) > maxBytes {
		return nil, &fetchError{reason: tooLarge, kind: ErrTooLarge}
	}
	return &Response{Body: body, Header: resp.Header.Clone(), FetchedAt: f.now()}, nil
}

// classifyTransportError maps a client error to a safe reason, keeping the
// cause for errors.Is and the operator's logs.
func classifyTransportError(err error) error {
	var (
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
		certErr  x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		verErr   *tls.CertificateVerificationError
		netErr   net.Error
	)
	switch {
	case errors.Is(err, errRedirect):
		return &fetchError{reason: "redirect not followed", cause: err}
	case errors.Is(err, ErrForbiddenAddress):
		return &fetchError{reason: "address not allowed", kind: ErrForbiddenAddress, cause: err}
	case errors.Is(err, context.Canceled):
		return &fetchError{reason: "canceled", cause: err, temporary: true}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &fetchError{reason: "timeout", cause: err, temporary: true}
	case errors.As(err, &hostErr), errors.As(err, &authErr), errors.As(err, &certErr),
		errors.As(err, &recErr), errors.As(err, &alertErr), errors.As(err, &verErr):
		return &fetchError{reason: "tls handshake failed", cause: err}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "lookup" {
		return &fetchError{reason: "host name did not resolve", cause: err, temporary: true}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &fetchError{reason: "host name did not resolve", cause: err, temporary: true}
	}
	return &fetchError{reason: "connection failed", cause: err, temporary: true}
}

// setDefault sets *p to def when it is zero.
func setDefault[T int | int64 | float64 | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}
