package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/internal/resourceuri"
)

// Status of one check.
type Status string

const (
	Pass Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
	Skip Status = "-"
)

// Check names, the report's columns, in order.
const (
	CheckChallenge = "challenge"
	CheckPRM       = "prm"
	CheckASMeta    = "as-metadata"
	CheckLane      = "lane"
	CheckCIMD      = "cimd"
	CheckDCR       = "dcr"
	CheckAudience  = "audience"
	CheckCORS      = "cors"
	CheckIss       = "iss"
)

// Checks lists the check names in report order.
var Checks = []string{CheckChallenge, CheckPRM, CheckASMeta, CheckLane, CheckCIMD, CheckDCR, CheckAudience, CheckCORS, CheckIss}

// Result is one cell of the report.
type Result struct {
	Client string `json:"client"`
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	MCPURL   string   `json:"mcp_url"`
	Resource string   `json:"resource,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	Clients  []string `json:"clients"`
	Results  []Result `json:"results"`
	Failed   int      `json:"failed"`
	Warnings int      `json:"warnings"`
}

// Get returns the result of one client's check (a zero Result when absent).
func (r *Report) Get(client, check string) Result {
	for _, x := range r.Results {
		if x.Client == client && x.Check == check {
			return x
		}
	}
	return Result{}
}

// Config configures a run.
type Config struct {
	// MCPURL is the MCP endpoint, as a user would paste it into a client.
	MCPURL string
	// HTTP is the client used for the site (nil: a default with a timeout;
	// it must not follow redirects, Run sets CheckRedirect on a copy).
	HTTP *http.Client
	// Profiles are the clients to replay (nil: Profiles()).
	Profiles []Profile
	// Register makes the DCR registrations the clients would make.
	Register bool
	// Fetcher fetches the vendors' CIMD documents locally through the same
	// SSRF-safe fetcher the server uses, to tell a bad document from a
	// server policy refusal. Nil skips the local fetch.
	Fetcher *cimd.Fetcher
}

// Run replays every profile against the site and returns the report. It
// returns an error only when the URL is unusable.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	u, err := url.Parse(cfg.MCPURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("doctor: %q is not an http(s) URL", cfg.MCPURL)
	}
	hc := http.Client{Timeout: 15 * time.Second}
	if cfg.HTTP != nil {
		hc = *cfg.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Profiles == nil {
		cfg.Profiles = Profiles()
	}
	d := &run{ctx: ctx, cfg: cfg, hc: &hc, mcp: u, rep: &Report{MCPURL: cfg.MCPURL}, cache: map[string]*fetched{}}
	d.discover()
	for _, p := range cfg.Profiles {
		d.rep.Clients = append(d.rep.Clients, p.Name)
		d.profile(p)
	}
	for _, r := range d.rep.Results {
		switch r.Status {
		case Fail:
			d.rep.Failed++
		case Warn:
			d.rep.Warnings++
		}
	}
	return d.rep, nil
}

type run struct {
	ctx   context.Context
	cfg   Config
	hc    *http.Client
	mcp   *url.URL
	rep   *Report
	cache map[string]*fetched

	// What discovery found, shared by every profile.
	challenge       Result // the 401 check, client-independent
	resourceMetaURL string
	prm             map[string]any
	prmURL          string
	prmErr          string
	issuer          string
	asMeta          map[string]any // from the issuer's RFC 8414 URL
	asMetaURL       string
	asErr           string
}

type fetched struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (d *run) add(client, check string, st Status, detail, fix string) {
	d.rep.Results = append(d.rep.Results, Result{Client: client, Check: check, Status: st, Detail: detail, Fix: fix})
}

// do sends one request; GETs are cached for the run.
func (d *run) do(method, target string, header http.Header, body []byte) *fetched {
	key := ""
	if method == http.MethodGet && header == nil {
		key = target
		if f, ok := d.cache[key]; ok {
			return f
		}
	}
	f := &fetched{}
	req, err := http.NewRequestWithContext(d.ctx, method, target, bytes.NewReader(body))
	if err != nil {
		f.err = err
		return f
	}
	if body == nil {
		req.Body = http.NoBody
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "mcpauth-doctor/1")
	resp, err := d.hc.Do(req)
	if err != nil {
		f.err = err
	} else {
		f.status, f.header = resp.StatusCode, resp.Header
		f.body, f.err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	if key != "" {
		d.cache[key] = f
	}
	return f
}

// jsonObject decodes a 200 application/json object, or says why not.
func (f *fetched) jsonObject() (map[string]any, string) {
	if f.err != nil {
		return nil, "unreachable: " + f.err.Error()
	}
	if f.status != http.StatusOK {
		return nil, fmt.Sprintf("HTTP %d", f.status)
	}
	mt, _, _ := mime.ParseMediaType(f.header.Get("Content-Type"))
	if mt != "application/json" {
		return nil, fmt.Sprintf("200 with Content-Type %q, not JSON", f.header.Get("Content-Type"))
	}
	var m map[string]any
	if err := json.Unmarshal(f.body, &m); err != nil || m == nil {
		return nil, "200 with a body that is not a JSON object"
	}
	return m, ""
}

// breaksClients reports a well-known answer that several clients choke on: a
// 200 whose body is empty, HTML or not JSON (a JSON 404 is safe).
func (f *fetched) breaksClients() string {
	if f.err != nil || f.status != http.StatusOK {
		return ""
	}
	if _, why := f.jsonObject(); why != "" {
		return why
	}
	return ""
}

// discover does the client-independent steps: the 401, the PRM and the
// issuer's metadata.
func (d *run) discover() {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpauth-doctor","version":"1"}}}`)
	f := d.do(http.MethodPost, d.mcp.String(), http.Header{
		"Content-Type": {"application/json"},
		"Accept":       {"application/json, text/event-stream"},
	}, body)
	d.challenge = Result{Check: CheckChallenge}
	switch {
	case f.err != nil:
		d.challenge.Status, d.challenge.Detail = Fail, "the MCP URL is unreachable: "+f.err.Error()
		d.challenge.Fix = "check the URL, DNS and that the site is running"
	case f.status != http.StatusUnauthorized:
		d.challenge.Status, d.challenge.Detail = Fail, fmt.Sprintf("a request without a token got HTTP %d, not 401", f.status)
		d.challenge.Fix = "put `mcp_protect` before `reverse_proxy` on the routes of the MCP endpoint, so that clients learn they must sign in"
	default:
		ch, ok := ParseChallenge(f.header.Values("WWW-Authenticate"), "Bearer")
		switch {
		case !ok:
			d.challenge.Status, d.challenge.Detail = Fail, "the 401 has no `WWW-Authenticate: Bearer` challenge"
			d.challenge.Fix = "answer 401 through `mcp_protect`, which sends the Bearer challenge clients need"
		case ch["resource_metadata"] == "":
			d.challenge.Status, d.challenge.Detail = Warn, "the Bearer challenge has no resource_metadata; clients fall back to guessing well-known paths"
			d.challenge.Fix = "use `mcp_protect`, which names the protected resource metadata in its challenge (RFC 9728 §5.1)"
		default:
			d.resourceMetaURL = ch["resource_metadata"]
			d.challenge.Status, d.challenge.Detail = Pass, "401 with resource_metadata="+d.resourceMetaURL
		}
	}

	// PRM: the challenge's URL, else the path-inserted well-known URL, else
	// the root one (RFC 9728 §3.1; the SDKs' order).
	candidates := []string{}
	if d.resourceMetaURL != "" {
		candidates = append(candidates, d.resourceMetaURL)
	}
	candidates = append(candidates, wellKnown(d.mcp, "oauth-protected-resource"), rootWellKnown(d.mcp, "oauth-protected-resource"))
	for _, c := range slices.Compact(candidates) {
		m, why := d.do(http.MethodGet, c, nil, nil).jsonObject()
		if m != nil {
			d.prm, d.prmURL = m, c
			break
		}
		if d.prmErr == "" {
			d.prmErr = c + ": " + why
		}
	}
	if d.prm != nil {
		d.rep.Resource, _ = d.prm["resource"].(string)
		if as := stringList(d.prm["authorization_servers"]); len(as) > 0 {
			d.issuer = as[0]
			d.rep.Issuer = d.issuer
		}
	}
	if d.issuer == "" {
		return
	}
	iu, err := url.Parse(d.issuer)
	if err != nil || iu.Host == "" {
		d.asErr = "the PRM's authorization server " + d.issuer + " is not a URL"
		return
	}
	d.asMetaURL = wellKnown(iu, "oauth-authorization-server")
	m, why := d.do(http.MethodGet, d.asMetaURL, nil, nil).jsonObject()
	if m == nil {
		d.asErr = d.asMetaURL + ": " + why
		return
	}
	d.asMeta = m
}

// wellKnown inserts /.well-known/<name> between the host and the path
// (RFC 8414 §3.1, RFC 9728 §3.1).
func wellKnown(u *url.URL, name string) string {
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + "/.well-known/" + name + p
}

func rootWellKnown(u *url.URL, name string) string {
	return u.Scheme + "://" + u.Host + "/.well-known/" + name
}

func stringList(v any) []string {
	arr, _ := v.([]any)
	var out []string
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *run) metaString(k string) string {
	s, _ := d.asMeta[k].(string)
	return s
}

func (d *run) metaList(k string) []string { return stringList(d.asMeta[k]) }

// profile runs every check for one client.
func (d *run) profile(p Profile) {
	c := d.challenge
	d.add(p.Name, CheckChallenge, c.Status, c.Detail, c.Fix)
	d.checkPRM(p)
	metaOK := d.checkASMeta(p)
	lane := d.checkLane(p, metaOK)
	clientID, redirect := "", ""
	if lane == "cimd" {
		clientID, redirect = d.checkCIMD(p)
	} else {
		d.add(p.Name, CheckCIMD, Skip, "not used", "")
	}
	if p.DCR != nil && (lane == "dcr" || p.CIMD == "") {
		id := d.checkDCR(p, lane == "dcr")
		if clientID == "" {
			clientID, redirect = id, p.DCR.RedirectURIs[0]
		}
	} else {
		d.add(p.Name, CheckDCR, Skip, "not used", "")
	}
	d.checkAudience(p, clientID, redirect)
	d.checkCORS(p)
	d.checkIss(p, metaOK)
}

func (d *run) checkPRM(p Profile) {
	if d.prm == nil {
		fix := "serve the protected resource metadata with `mcp_protect` (it answers /.well-known/oauth-protected-resource for its path)"
		d.add(p.Name, CheckPRM, Fail, "no protected resource metadata: "+d.prmErr, fix)
		return
	}
	var problems []string
	fix := ""
	res, _ := d.prm["resource"].(string)
	switch {
	case res == "":
		problems = append(problems, "the PRM has no resource")
		fix = "set `resource` in `mcp_protect` to the MCP URL clients are given"
	case !sameResource(res, d.mcp.String()):
		problems = append(problems, fmt.Sprintf("the PRM's resource %s is not the MCP URL %s (the TypeScript SDK and VS Code refuse this)", res, d.mcp.String()))
		fix = "set `resource " + d.mcp.String() + "` in `mcp_protect` (the resource is the URL users paste into their client)"
	}
	if len(stringList(d.prm["authorization_servers"])) == 0 {
		problems = append(problems, "the PRM lists no authorization_servers")
		if fix == "" {
			fix = "give `mcp_protect` an issuer (the `mcp_auth` app's, or `issuer` for an external one)"
		}
	}
	// Every path a client may probe must be JSON or a 404, never HTML.
	for _, probe := range []string{wellKnown(d.mcp, "oauth-protected-resource"), rootWellKnown(d.mcp, "oauth-protected-resource")} {
		if why := d.do(http.MethodGet, probe, nil, nil).breaksClients(); why != "" {
			problems = append(problems, probe+" answers "+why)
			if fix == "" {
				fix = "let `mcp_protect` (or `mcp_auth_server`) answer /.well-known/* before any catch-all route; a JSON 404 is fine, an HTML 200 is not"
			}
		}
	}
	if len(problems) > 0 {
		d.add(p.Name, CheckPRM, Fail, strings.Join(problems, "; "), fix)
		return
	}
	d.add(p.Name, CheckPRM, Pass, "resource "+res+" at "+d.prmURL, "")
}

// sameResource compares two resource URLs after the server's normalization
// (default port, case of scheme and host).
func sameResource(a, b string) bool {
	na, errA := resourceuri.Normalize(a)
	nb, errB := resourceuri.Normalize(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return na == nb
}

// asCandidates is the metadata discovery order the client follows.
func (d *run) asCandidates(p Profile) []string {
	iu, _ := url.Parse(d.issuer)
	var out []string
	if p.ASOnMCPHost {
		out = append(out, wellKnown(d.mcp, "oauth-authorization-server"), rootWellKnown(d.mcp, "oauth-authorization-server"))
	}
	out = append(out, wellKnown(iu, "oauth-authorization-server"), wellKnown(iu, "openid-configuration"))
	if strings.Trim(iu.Path, "/") != "" {
		out = append(out, strings.TrimSuffix(d.issuer, "/")+"/.well-known/openid-configuration")
	}
	return out
}

// checkASMeta follows the client's discovery order: the first JSON document
// found must be the issuer's, and every step before it must not break the
// client. It reports whether the metadata is usable.
func (d *run) checkASMeta(p Profile) bool {
	if d.issuer == "" {
		d.add(p.Name, CheckASMeta, Skip, "no authorization server to look up (see prm)", "")
		return false
	}
	var found map[string]any
	var foundAt string
	var problems []string
	for _, c := range d.asCandidates(p) {
		f := d.do(http.MethodGet, c, nil, nil)
		m, why := f.jsonObject()
		if m != nil {
			found, foundAt = m, c
			break
		}
		if b := f.breaksClients(); b != "" {
			problems = append(problems, c+" answers "+b)
		}
		_ = why
	}
	fix := ""
	switch {
	case found == nil && p.ASOnMCPHost:
		problems = append(problems, "no authorization server metadata on the MCP host or at the issuer")
		fix = "serve `mcp_auth_server` on the issuer's origin; when the MCP host is the issuer's host, the guard mirrors the metadata there"
	case found == nil:
		problems = append(problems, "no authorization server metadata for "+d.issuer+" ("+d.asErr+")")
		fix = "serve `mcp_auth_server` on the issuer's origin (`issuer` in `mcp_auth`), or point `mcp_protect` at the right issuer"
	default:
		if iss, _ := found["issuer"].(string); iss != d.issuer {
			problems = append(problems, fmt.Sprintf("%s names issuer %q, not %q", foundAt, iss, d.issuer))
			fix = "the PRM's authorization_servers entry must equal the metadata's issuer exactly: use one issuer URL everywhere"
		}
		if !slices.Contains(stringList(found["code_challenge_methods_supported"]), "S256") {
			problems = append(problems, "code_challenge_methods_supported lacks S256 (MCP clients refuse the server)")
			fix = "advertise PKCE S256 (`mcp_auth_server` does)"
		}
		if !slices.Contains(stringList(found["response_types_supported"]), "code") {
			problems = append(problems, "response_types_supported lacks code")
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint"} {
			if s, _ := found[k].(string); s == "" {
				problems = append(problems, "no "+k)
			}
		}
	}
	if p.OriginEndpoints {
		origin := d.mcp.Scheme + "://" + d.mcp.Host
		for _, ep := range []string{"/authorize", "/token"} {
			method := http.MethodGet
			if ep == "/token" {
				method = http.MethodPost
			}
			f := d.do(method, origin+ep, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, nil)
			if f.err == nil && f.status == http.StatusNotFound {
				problems = append(problems, p.Name+" uses "+ep+" on the MCP server's origin, which answers 404")
				if fix == "" {
					fix = "serve `mcp_auth_server` on the MCP host too (its endpoints at the origin's root), or put the MCP server on the issuer's host"
				}
			}
		}
	}
	if len(problems) > 0 {
		d.add(p.Name, CheckASMeta, Fail, strings.Join(problems, "; "), fix)
		return found != nil && d.asMeta != nil
	}
	d.add(p.Name, CheckASMeta, Pass, "issuer "+d.issuer+" at "+foundAt, "")
	return true
}

// checkLane decides how the client would onboard, as the client would from
// the metadata, and says whether that lane exists.
func (d *run) checkLane(p Profile, metaOK bool) string {
	if !metaOK {
		d.add(p.Name, CheckLane, Skip, "no usable metadata (see as-metadata)", "")
		return ""
	}
	methods := d.metaList("token_endpoint_auth_methods_supported")
	cimdOn, _ := d.asMeta["client_id_metadata_document_supported"].(bool)
	dcrOn := d.metaString("registration_endpoint") != ""
	if p.CIMD != "" && cimdOn {
		need := p.CIMDNeedsAuth
		if need == "" || slices.Contains(methods, need) {
			d.add(p.Name, CheckLane, Pass, "client ID metadata document ("+p.CIMD+")", "")
			return "cimd"
		}
		if p.DCR == nil || !dcrOn {
			d.add(p.Name, CheckLane, Fail, fmt.Sprintf("CIMD is on but token_endpoint_auth_methods_supported lacks %q, which %s's document needs, and there is no DCR", need, p.Name),
				"advertise "+need+" (`mcp_auth_server` does when CIMD is on)")
			return ""
		}
	}
	if p.DCR != nil && dcrOn {
		st, detail := Pass, "dynamic client registration"
		if p.CIMD != "" {
			st, detail = Warn, "dynamic client registration (CIMD, the client's default and MCP 2026-07-28's, is off)"
		}
		d.add(p.Name, CheckLane, st, detail, ternary(st == Warn, "turn on `cimd { policy trusted }` (the built-in trusted hosts include this client's)", ""))
		return "dcr"
	}
	switch {
	case p.CIMD != "" && p.DCR == nil:
		d.add(p.Name, CheckLane, Fail, "CIMD is off and "+p.Name+" has no other lane", "turn on `cimd { policy trusted }`")
	case p.CIMD == "":
		st := Fail
		if p.ManualFallback {
			st = Warn
		}
		d.add(p.Name, CheckLane, st, p.Name+" registers through DCR, which is off", "add a `dcr` block to `mcp_auth` (public PKCE clients only), or seed an owned `client` with its redirect URIs")
	default:
		st := Fail
		if p.ManualFallback {
			st = Warn
		}
		d.add(p.Name, CheckLane, st, "neither CIMD nor DCR is on", "turn on `cimd { policy trusted }` in `mcp_auth` (and `dcr` for clients without CIMD)")
	}
	return ""
}

func ternary(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// pkce returns a fresh S256 challenge.
func pkce() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize asks /authorize as the client would and reports whether the
// server accepted the request (a sign-in page or a redirect to it) or why
// not.
func (d *run) authorize(clientID, redirect, resource, scope string) (bool, string) {
	ep := d.metaString("authorization_endpoint")
	if ep == "" {
		return false, "no authorization_endpoint"
	}
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {pkce()}, "code_challenge_method": {"S256"}, "state": {"doctor"},
	}
	if resource != "" {
		q.Set("resource", resource)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	sep := "?"
	if strings.Contains(ep, "?") {
		sep = "&"
	}
	f := d.do(http.MethodGet, ep+sep+q.Encode(), http.Header{"Accept": {"text/html"}}, nil)
	if f.err != nil {
		return false, "unreachable: " + f.err.Error()
	}
	if f.status >= 300 && f.status < 400 {
		loc := f.header.Get("Location")
		if lu, err := url.Parse(loc); err == nil {
			if e := lu.Query().Get("error"); e != "" {
				return false, "redirected with error=" + e + " " + lu.Query().Get("error_description")
			}
		}
		return true, ""
	}
	if f.status == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP %d: %s", f.status, pageText(f.body))
}

var (
	tagRE   = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// pageText is the readable text of an error page (or JSON error), short.
func pageText(b []byte) string {
	var e struct {
		Description string `json:"error_description"`
		Code        string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Code != "" {
		return strings.TrimSpace(e.Code + " " + e.Description)
	}
	s := tagRE.ReplaceAllString(string(b), " ")
	s = strings.TrimSpace(spaceRE.ReplaceAllString(html.UnescapeString(s), " "))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func (d *run) checkCIMD(p Profile) (string, string) {
	ok, why := d.authorize(p.CIMD, p.CIMDRedirect, d.rep.Resource, p.Scope)
	if ok {
		d.add(p.Name, CheckCIMD, Pass, "the server fetched and accepted "+p.CIMD, "")
		return p.CIMD, p.CIMDRedirect
	}
	detail := "the server refused " + p.CIMD + ": " + why
	fix := "put the document's host in `cimd { trusted_hosts … }` (or `policy any`), and check the server can reach it over HTTPS"
	if d.cfg.Fetcher != nil {
		resp, err := d.cfg.Fetcher.Fetch(d.ctx, p.CIMD)
		switch {
		case err != nil:
			detail += "; fetching it from here failed too: " + err.Error()
			fix = "the document is unreachable: check outbound HTTPS from the server (proxy, firewall, DNS)"
		default:
			if _, err := cimd.ValidateDocument(p.CIMD, resp.Body); err != nil {
				detail += "; the document itself fails our validation: " + err.Error()
				fix = "the vendor's document does not meet the CIMD rules; use DCR or an owned client for this client until it is fixed"
			} else {
				detail += "; the document itself is valid, so the server's policy refused it"
			}
		}
	}
	d.add(p.Name, CheckCIMD, Fail, detail, fix)
	return "", ""
}

func (d *run) checkDCR(p Profile, laneIsDCR bool) string {
	ep := d.metaString("registration_endpoint")
	switch {
	case ep == "" && laneIsDCR:
		d.add(p.Name, CheckDCR, Fail, "no registration_endpoint", "add a `dcr` block to `mcp_auth`")
		return ""
	case ep == "":
		d.add(p.Name, CheckDCR, Skip, "DCR is off", "")
		return ""
	case !d.cfg.Register:
		d.add(p.Name, CheckDCR, Skip, "not tried (--no-register)", "")
		return ""
	}
	body, _ := json.Marshal(p.DCR)
	f := d.do(http.MethodPost, ep, http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}, body)
	if f.err != nil {
		d.add(p.Name, CheckDCR, Fail, "unreachable: "+f.err.Error(), "check the registration endpoint is served")
		return ""
	}
	var out struct {
		ClientID string `json:"client_id"`
		Error    string `json:"error"`
		Desc     string `json:"error_description"`
	}
	_ = json.Unmarshal(f.body, &out)
	if f.status != http.StatusCreated || out.ClientID == "" {
		detail := fmt.Sprintf("registration of %s's shape (%s) refused: HTTP %d %s %s", p.Name, strings.Join(p.DCR.RedirectURIs, ", "), f.status, out.Error, out.Desc)
		fix := "the redirect policy must accept every URI the client registers (one refused URI fails the whole registration)"
		if f.status == http.StatusTooManyRequests {
			fix = "the registration rate limit was reached; wait or raise `dcr { rate_burst … }`"
		}
		d.add(p.Name, CheckDCR, Fail, strings.TrimSpace(detail), fix)
		return ""
	}
	d.add(p.Name, CheckDCR, Pass, "registered as "+out.ClientID, "")
	return out.ClientID
}

// checkAudience asks /authorize with the resource forms the client sends.
func (d *run) checkAudience(p Profile, clientID, redirect string) {
	if clientID == "" || d.rep.Resource == "" {
		d.add(p.Name, CheckAudience, Skip, "no client id to try the resource with", "")
		return
	}
	forms := []string{d.rep.Resource}
	if p.TrailingSlash {
		if u, err := url.Parse(d.rep.Resource); err == nil && (u.Path == "" || u.Path == "/") {
			forms = append(forms, strings.TrimSuffix(d.rep.Resource, "/")+"/")
		}
	}
	var bad []string
	for _, r := range forms {
		if ok, why := d.authorize(clientID, redirect, r, p.Scope); !ok {
			bad = append(bad, "resource="+r+": "+why)
		}
	}
	if len(bad) > 0 {
		d.add(p.Name, CheckAudience, Fail, strings.Join(bad, "; "),
			"the authorization server must offer the guard's resource: list it in `mcp_auth { resource … }` (or let the guard register it) and give the client that audience")
		return
	}
	d.add(p.Name, CheckAudience, Pass, "resource accepted: "+strings.Join(forms, ", "), "")
}

// checkCORS replays a browser client's preflights.
func (d *run) checkCORS(p Profile) {
	if p.Origin == "" {
		d.add(p.Name, CheckCORS, Skip, "not a browser client", "")
		return
	}
	var problems []string
	wantHeaders := []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id"}
	preflight := func(target, method string, headers []string) {
		f := d.do(http.MethodOptions, target, http.Header{
			"Origin":                         {p.Origin},
			"Access-Control-Request-Method":  {method},
			"Access-Control-Request-Headers": {strings.Join(headers, ",")},
		}, nil)
		if f.err != nil {
			problems = append(problems, "preflight "+target+": "+f.err.Error())
			return
		}
		if f.status < 200 || f.status > 299 {
			problems = append(problems, fmt.Sprintf("preflight %s: HTTP %d", target, f.status))
			return
		}
		if ao := f.header.Get("Access-Control-Allow-Origin"); ao != p.Origin && ao != "*" {
			problems = append(problems, "preflight "+target+": origin "+p.Origin+" not allowed")
			return
		}
		allowed := strings.ToLower(strings.Join(f.header.Values("Access-Control-Allow-Headers"), ","))
		for _, h := range headers {
			if !headerListed(allowed, h) {
				problems = append(problems, "preflight "+target+": header "+h+" not allowed")
			}
		}
	}
	preflight(d.mcp.String(), http.MethodPost, wantHeaders)
	// The 401 must expose its challenge to the page.
	f := d.do(http.MethodPost, d.mcp.String(), http.Header{"Origin": {p.Origin}, "Content-Type": {"application/json"}},
		[]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if f.err == nil {
		if ao := f.header.Get("Access-Control-Allow-Origin"); ao != p.Origin && ao != "*" {
			problems = append(problems, "the 401 does not allow origin "+p.Origin)
		} else if !headerListed(strings.ToLower(strings.Join(f.header.Values("Access-Control-Expose-Headers"), ",")), "www-authenticate") {
			problems = append(problems, "the 401 does not expose WWW-Authenticate")
		}
	}
	for _, k := range []string{"token_endpoint", "registration_endpoint"} {
		if ep := d.metaString(k); ep != "" {
			preflight(ep, http.MethodPost, []string{"content-type", "mcp-protocol-version"})
		}
	}
	for _, u := range []string{d.prmURL, d.asMetaURL} {
		if u == "" {
			continue
		}
		f := d.do(http.MethodGet, u, http.Header{"Origin": {p.Origin}}, nil)
		if ao := f.header.Get("Access-Control-Allow-Origin"); f.err == nil && ao != p.Origin && ao != "*" {
			problems = append(problems, u+" does not allow origin "+p.Origin)
		}
	}
	if len(problems) > 0 {
		d.add(p.Name, CheckCORS, Fail, strings.Join(problems, "; "),
			"list "+p.Origin+" in `cors_origins` (the `mcp_auth` app's, and `mcp_protect`'s when the guard is on another host)")
		return
	}
	d.add(p.Name, CheckCORS, Pass, "preflights from "+p.Origin+" answered", "")
}

func headerListed(list, h string) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for _, x := range strings.Split(list, ",") {
		if strings.TrimSpace(x) == h {
			return true
		}
	}
	return false
}

func (d *run) checkIss(p Profile, metaOK bool) {
	if !metaOK {
		d.add(p.Name, CheckIss, Skip, "no usable metadata", "")
		return
	}
	if v, _ := d.asMeta["authorization_response_iss_parameter_supported"].(bool); !v {
		d.add(p.Name, CheckIss, Warn, "the metadata does not promise iss in authorization responses (RFC 9207): mix-up attacks go undetected",
			"use an authorization server that sends iss (`mcp_auth_server` does)")
		return
	}
	d.add(p.Name, CheckIss, Pass, "iss in authorization responses (RFC 9207)", "")
}

// ErrFailed is returned by callers when a report has failures.
var ErrFailed = errors.New("doctor: some checks failed")
