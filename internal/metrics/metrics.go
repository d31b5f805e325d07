package metrics

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Metrics are the Prometheus counters of the mcp_auth app, served by
// Caddy's metrics endpoint. Every label takes its value from a closed set
// (unknown values become "other"): never a client id, host or user.
//
// A nil *Metrics is valid and counts nothing.
type Metrics struct {
	tokensIssued *prometheus.CounterVec // grant_type
	tokenRefused *prometheus.CounterVec // reason
	guard        *prometheus.CounterVec // outcome
	cimdFetches  *prometheus.CounterVec // result
	logins       *prometheus.CounterVec // result
	refusals     *prometheus.CounterVec // endpoint, reason (oauth.Reason)
	toolCalls    *prometheus.CounterVec // tool (the guard's closed set), outcome
	// guardByOutcome caches the guard's counter of each outcome (a closed
	// set): WithLabelValues hashes and locks, once per request otherwise.
	guardByOutcome *sync.Map
	// toolByLabels does the same for the tool-call counter, keyed by
	// toolKey: both labels come from closed sets.
	toolByLabels *sync.Map

	auditDropped *prometheus.CounterVec // writer
}

const metricsNamespace = "mcpauth"

// The collectors live for the whole process, so counters keep counting
// across config reloads (each load gets a fresh Caddy registry; the same
// collectors are registered into it).
var (
	sharedMetricsOnce sync.Once
	sharedMetrics     *Metrics
)

func newMetrics() *Metrics {
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help}, []string{label})
	}
	return &Metrics{
		tokensIssued: vec("tokens_issued_total", "Access tokens issued by the token endpoint, by grant type.", "grant_type"),
		tokenRefused: vec("token_refused_total", "Token requests refused, by reason (OAuth error code, refresh_reuse, code_replay).", "reason"),
		guard:        vec("guard_decisions_total", "Decisions of the MCP resource guard, by outcome.", "outcome"),
		cimdFetches:  vec("cimd_fetches_total", "Client ID Metadata Document resolutions not served from the cache, by result.", "result"),
		logins:       vec("login_attempts_total", "Hosted login attempts, by result.", "result"),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "refusals_total",
			Help: "Refused /authorize, /token, /revoke and /register requests, by endpoint and reason (README: Refusal reasons)."},
			[]string{"endpoint", "reason"}),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "guard_tool_calls_total",
			Help: "tools/call requests decided by the MCP resource guard, by tool (the configured tools; any other is \"other\") and outcome."},
			[]string{"tool", "outcome"}),

		auditDropped: vec("audit_events_dropped_total", "Audit events the batched writer dropped (its bounded buffer overflowed while the store refused writes, or the last write at shutdown failed). Security decisions are never batched.", "writer"),
	}
}

// Register registers the app's counters in reg (caddymodule passes Caddy's
// ctx.GetMetricsRegistry()) and returns them. It is idempotent: registering
// twice in one registry, or after a reload, reuses the existing collectors.
// A nil reg returns counters that are not exported.
func Register(reg prometheus.Registerer) (*Metrics, error) {
	sharedMetricsOnce.Do(func() { sharedMetrics = newMetrics() })
	m := *sharedMetrics
	m.guardByOutcome = new(sync.Map)
	m.toolByLabels = new(sync.Map)
	if reg == nil {
		return &m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.tokensIssued, &m.tokenRefused, &m.guard, &m.cimdFetches, &m.logins, &m.refusals, &m.toolCalls, &m.auditDropped} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			*c = existing
		}
	}
	return &m, nil
}

// Closed label sets.
var (
	grantTypeLabels = labelSet("authorization_code", "refresh_token")
	refusalLabels   = labelSet("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
		"unsupported_grant_type", "invalid_scope", "invalid_target", "temporarily_unavailable",
		"server_error", "access_denied", "slow_down", "refresh_reuse", "code_replay")
	cimdLabels = labelSet(cimd.ResultOK, cimd.ResultUntrustedHost, cimd.ResultForbiddenAddress,
		cimd.ResultRateLimited, cimd.ResultFetchError, cimd.ResultInvalidDocument)
	loginLabels = labelSet("success", "failure", "throttled", "disabled")
	// reasonLabels is authserver's closed set of refusal reasons.
	reasonLabels = func() map[string]bool {
		m := map[string]bool{}
		for _, r := range oauth.Reasons() {
			m[string(r)] = true
		}
		return m
	}()
	// refusalEndpoints maps refusal audit types to the endpoint label.
	refusalEndpoints = map[string]string{audit.AuthzRefused: "authorize", audit.TokenRefused: "token",
		audit.RevokeRefused: "revoke", audit.ClientRegisterRefuse: "register"}
)

func labelSet(vals ...string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

func closedLabel(labels map[string]bool, v string) string {
	if labels[v] {
		return v
	}
	return "other"
}

// OnAuditDrop counts audit events dropped by the batched writer.
func (m *Metrics) OnAuditDrop(n int) {
	if m == nil || m.auditDropped == nil {
		return
	}
	m.auditDropped.WithLabelValues("batch").Add(float64(n))
}

// OnEvent counts an audit event. Pass it as authserver.Config.OnEvent and
// idp.Config.OnEvent (and RegistrationConfig.OnEvent).
func (m *Metrics) OnEvent(ev storage.AuditEvent) {
	if m == nil {
		return
	}
	if ep, ok := refusalEndpoints[ev.Type]; ok {
		m.refusals.WithLabelValues(ep, closedLabel(reasonLabels, ev.Detail["reason"])).Inc()
	}
	switch ev.Type {
	case audit.TokenIssued:
		m.tokensIssued.WithLabelValues(closedLabel(grantTypeLabels, ev.Detail["grant_type"])).Inc()
	case audit.TokenRefused:
		m.tokenRefused.WithLabelValues(closedLabel(refusalLabels, ev.Outcome)).Inc()
	case "refresh.reuse":
		m.tokenRefused.WithLabelValues("refresh_reuse").Inc()
	case audit.CodeReplay:
		m.tokenRefused.WithLabelValues("code_replay").Inc()
	case audit.LoginSuccess:
		m.logins.WithLabelValues("success").Inc()
	case audit.LoginFailure:
		r := "failure"
		switch ev.Detail["reason"] {
		case "throttled":
			r = "throttled"
		case "disabled":
			r = "disabled"
		}
		m.logins.WithLabelValues(closedLabel(loginLabels, r)).Inc()
	}
}

// CIMDFetch counts a metadata document resolution. Its signature is that
// of cimd.ResolverConfig.OnFetch; the host is deliberately not a label.
func (m *Metrics) CIMDFetch(_ string, result string) {
	if m == nil {
		return
	}
	m.cimdFetches.WithLabelValues(closedLabel(cimdLabels, result)).Inc()
}

// GuardDecision counts one decision of the resource guard: ch is the
// refusal, nil when the request was let through.
func (m *Metrics) GuardDecision(ch *resourceguard.Challenge) {
	if m == nil {
		return
	}
	outcome := guardOutcome(ch)
	if c, ok := m.guardByOutcome.Load(outcome); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.guard.WithLabelValues(outcome)
	m.guardByOutcome.Store(outcome, c)
	c.Inc()
}

// GuardToolCalls counts the tools/call messages of one guard decision: d
// holds the calls the guard read (nil when it read none), ch the refusal.
// The tool label comes from the guard's closed set (ToolLabel).
func (m *Metrics) GuardToolCalls(g *resourceguard.Guard, d *resourceguard.Decision, ch *resourceguard.Challenge) {
	if m == nil || d == nil {
		return
	}
	for _, c := range d.Calls {
		if c.Method == "tools/call" {
			k := toolKey{g.ToolLabel(c.Name), guardOutcome(ch)}
			if ctr, ok := m.toolByLabels.Load(k); ok {
				ctr.(prometheus.Counter).Inc()
				continue
			}
			ctr := m.toolCalls.WithLabelValues(k.tool, k.outcome)
			m.toolByLabels.Store(k, ctr)
			ctr.Inc()
		}
	}
}

// toolKey is the label pair of guard_tool_calls_total.
type toolKey struct{ tool, outcome string }

// guardOutcome maps a guard decision to the guard's closed outcome set.
func guardOutcome(ch *resourceguard.Challenge) string { return resourceguard.Outcome(ch) }
