package metrics

import (
	"context"
	"crypto"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func TestRegisterIdempotent(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m1, err := Register(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Register(reg) // same registry again (a second app)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if m1.tokensIssued != m2.tokensIssued {
		t.Fatal("second registration did not reuse the collector")
	}
	// A reload: a new registry, the same counters (they keep counting).
	before := counterValue(m1.logins.WithLabelValues("success"))
	m1.OnEvent(storage.AuditEvent{Type: "login.success"})
	m3, err := Register(prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if got := counterValue(m3.logins.WithLabelValues("success")); got != before+1 {
		t.Fatalf("counter after reload = %v, want %v", got, before+1)
	}
	// A foreign collector of the same name and a different type is an error.
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "mcpauth", Name: "login_attempts_total", Help: "x"}))
	if _, err := Register(other); err == nil {
		t.Fatal("a conflicting collector was accepted")
	}
	if m, err := Register(nil); err != nil || m == nil {
		t.Fatalf("nil registry: %v", err)
	}
	var nilM *Metrics
	nilM.OnEvent(storage.AuditEvent{Type: "token.issued"})
	nilM.CIMDFetch("h", "ok")
	nilM.GuardDecision(nil)
}

func TestMetricsLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := Register(reg)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		vec   *prometheus.CounterVec
		label string
	}
	cases := []struct {
		name string
		feed func()
		want want
	}{
		{"code issued", func() {
			m.OnEvent(storage.AuditEvent{Type: "token.issued", Detail: map[string]string{"grant_type": "authorization_code"}})
		}, want{m.tokensIssued, "authorization_code"}},
		{"refresh issued", func() {
			m.OnEvent(storage.AuditEvent{Type: "token.issued", Detail: map[string]string{"grant_type": "refresh_token"}})
		}, want{m.tokensIssued, "refresh_token"}},
		{"unknown grant type is other", func() {
			m.OnEvent(storage.AuditEvent{Type: "token.issued", Detail: map[string]string{"grant_type": "urn:x:" + strings.Repeat("a", 100)}})
		}, want{m.tokensIssued, "other"}},
		{"refused invalid_grant", func() { m.OnEvent(storage.AuditEvent{Type: "token.refused", Outcome: "invalid_grant"}) }, want{m.tokenRefused, "invalid_grant"}},
		{"refused free text is other", func() { m.OnEvent(storage.AuditEvent{Type: "token.refused", Outcome: "client cli-app said no"}) }, want{m.tokenRefused, "other"}},
		{"refresh reuse", func() { m.OnEvent(storage.AuditEvent{Type: "refresh.reuse", ClientID: "x"}) }, want{m.tokenRefused, "refresh_reuse"}},
		{"code replay", func() { m.OnEvent(storage.AuditEvent{Type: "code.replay"}) }, want{m.tokenRefused, "code_replay"}},
		{"login success", func() { m.OnEvent(storage.AuditEvent{Type: "login.success"}) }, want{m.logins, "success"}},
		{"login throttled", func() {
			m.OnEvent(storage.AuditEvent{Type: "login.failure", Detail: map[string]string{"reason": "throttled"}})
		}, want{m.logins, "throttled"}},
		{"login bad password", func() {
			m.OnEvent(storage.AuditEvent{Type: "login.failure", Detail: map[string]string{"reason": "bad_password"}})
		}, want{m.logins, "failure"}},
		{"cimd ok", func() { m.CIMDFetch("claude.ai", "ok") }, want{m.cimdFetches, "ok"}},
		{"cimd unknown result", func() { m.CIMDFetch("evil.example", "weird") }, want{m.cimdFetches, "other"}},
		{"guard allowed", func() { m.GuardDecision(nil) }, want{m.guard, "allowed"}},
		{"guard no token", func() { m.GuardDecision(&resourceguard.Challenge{Status: 401}) }, want{m.guard, "no_token"}},
		{"guard invalid token", func() {
			m.GuardDecision(&resourceguard.Challenge{Status: 401, Error: resourceguard.ErrorInvalidToken})
		}, want{m.guard, "invalid_token"}},
		{"guard scope", func() {
			m.GuardDecision(&resourceguard.Challenge{Status: 403, Error: resourceguard.ErrorInsufficientScope})
		}, want{m.guard, "insufficient_scope"}},
		{"guard origin", func() {
			m.GuardDecision(&resourceguard.Challenge{Status: http.StatusForbidden, Description: "origin not allowed"})
		}, want{m.guard, "origin_refused"}},
		{"guard headers too large", func() { m.GuardDecision(&resourceguard.Challenge{Status: 431}) }, want{m.guard, "headers_too_large"}},
		{"guard unavailable", func() { m.GuardDecision(&resourceguard.Challenge{Status: 503}) }, want{m.guard, "unavailable"}},
		{"guard teapot", func() { m.GuardDecision(&resourceguard.Challenge{Status: 418}) }, want{m.guard, "other"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := counterValue(c.want.vec.WithLabelValues(c.want.label))
			c.feed()
			if got := counterValue(c.want.vec.WithLabelValues(c.want.label)); got != before+1 {
				t.Fatalf("%s = %v, want %v", c.want.label, got, before+1)
			}
		})
	}
	// Events that are not counted leave every series alone, and no label
	// value ever comes from a client id or host.
	m.OnEvent(storage.AuditEvent{Type: "consent.granted", ClientID: "https://evil.example/x"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				if strings.Contains(lp.GetValue(), "example") || strings.Contains(lp.GetValue(), "cli-app") || len(lp.GetValue()) > 30 {
					t.Errorf("%s has label %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// Refusals are counted by endpoint and by authserver's closed set of
// reasons; a reason outside it is "other".
func TestMetricsRefusals(t *testing.T) {
	m, err := Register(prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ev               storage.AuditEvent
		endpoint, reason string
	}{
		{storage.AuditEvent{Type: "authorize.refused", Outcome: "invalid_client", Detail: map[string]string{"reason": string(oauth.ReasonCIMDDocumentTooLarge)}}, "authorize", "cimd_document_too_large"},
		{storage.AuditEvent{Type: "token.refused", Outcome: "invalid_grant", Detail: map[string]string{"reason": string(oauth.ReasonRefreshReused)}}, "token", "refresh_reused"},
		{storage.AuditEvent{Type: "client.register_refused", Outcome: "rate_limited", Detail: map[string]string{"reason": string(oauth.ReasonRegistrationRateLimit)}}, "register", "registration_rate_limited"},
		{storage.AuditEvent{Type: "token.refused", Outcome: "invalid_grant", Detail: map[string]string{"reason": "https://evil.example/said-so"}}, "token", "other"},
	}
	for _, c := range cases {
		before := counterValue(m.refusals.WithLabelValues(c.endpoint, c.reason))
		m.OnEvent(c.ev)
		if got := counterValue(m.refusals.WithLabelValues(c.endpoint, c.reason)); got != before+1 {
			t.Errorf("%s/%s = %v, want %v", c.endpoint, c.reason, got, before+1)
		}
	}
	for _, r := range oauth.Reasons() {
		if len(r) > 30 {
			t.Errorf("reason %q is too long for a label", r)
		}
	}
}

// TestGuardToolCallsMetric: tools/call decisions are counted by tool from
// the operator's closed set; a made-up tool name is "other".
func TestGuardToolCallsMetric(t *testing.T) {
	rg, err := resourceguard.New(resourceguard.Config{Resource: "https://mcp.example.com/mcp", Issuer: "https://login.example.org", Keys: noKeys{},
		MethodScopes: map[string][]string{"tools/call:delete_todo": {"todo:admin"}}, MetricTools: []string{"list_todos"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Register(nil)
	if err != nil {
		t.Fatal(err)
	}
	val := func(tool, outcome string) float64 { return counterValue(m.toolCalls.WithLabelValues(tool, outcome)) }
	del, other, list := val("delete_todo", "insufficient_scope"), val("other", "allowed"), val("list_todos", "allowed")
	refused := &resourceguard.Challenge{Status: 403, Error: resourceguard.ErrorInsufficientScope}
	m.GuardToolCalls(rg, &resourceguard.Decision{Calls: []resourceguard.Call{{Method: "tools/call", Name: "delete_todo"}}}, refused)
	m.GuardToolCalls(rg, &resourceguard.Decision{Calls: []resourceguard.Call{{Method: "tools/call", Name: "user-supplied-\x00"},
		{Method: "tools/list"}, {Method: "tools/call", Name: "list_todos"}}}, nil)
	m.GuardToolCalls(rg, nil, nil)
	if val("delete_todo", "insufficient_scope") != del+1 || val("other", "allowed") != other+1 || val("list_todos", "allowed") != list+1 {
		t.Fatal("tool calls not counted by closed label")
	}
}

// noKeys is a key source with no keys: the tool-calls test builds a guard
// only for its closed tool labels.
type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (crypto.PublicKey, string, error) {
	return nil, "", resourceguard.ErrUnknownKey
}
func (noKeys) Generation() uint64 { return 1 }
