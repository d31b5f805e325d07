package resourceguard

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

// ToolLimit is a rate limit of tools/call per (subject, tool): every subject
// has its own token bucket for each tool.
type ToolLimit struct {
	// Tool is the tool's name, or "*" for each tool without a limit of its
	// own.
	Tool string
	// Rate is the sustained rate in calls per second (e.g. 10/60.0 for ten
	// a minute); Burst the calls allowed at once (default 1).
	Rate  float64
	Burst int
}

// OtherTool is the metrics label of every tool outside the configured set.
const OtherTool = "other"

// maxLimitedSubjects bounds the (subject, tool) buckets each limit keeps;
// past it the least recently seen one is forgotten (internal/abuse.LRU).
const maxLimitedSubjects = 20000

type toolLimiter struct {
	byTool map[string]*abuse.Limiter
	any    *abuse.Limiter
}

func newToolLimiter(limits []ToolLimit, now func() time.Time) (*toolLimiter, error) {
	if len(limits) == 0 {
		return nil, nil
	}
	t := &toolLimiter{byTool: map[string]*abuse.Limiter{}}
	for _, l := range limits {
		if l.Tool == "" {
			return nil, errors.New("resourceguard: tool limit without a tool")
		}
		if !(l.Rate > 0) || math.IsInf(l.Rate, 0) || l.Burst < 0 {
			return nil, fmt.Errorf("resourceguard: tool limit %q: rate must be positive and burst not negative", l.Tool)
		}
		lim := abuse.NewLimiter(abuse.LimiterConfig{Rate: rate.Limit(l.Rate), Burst: l.Burst, MaxKeys: maxLimitedSubjects, Now: now})
		if l.Tool == "*" {
			if t.any != nil {
				return nil, errors.New(`resourceguard: two tool limits for "*"`)
			}
			t.any = lim
			continue
		}
		if _, dup := t.byTool[l.Tool]; dup {
			return nil, fmt.Errorf("resourceguard: two tool limits for %q", l.Tool)
		}
		t.byTool[l.Tool] = lim
	}
	return t, nil
}

// allow takes one call from the caller's bucket of each tools/call in
// calls. The subject is the token's sub (client_id when it has none).
func (t *toolLimiter) allow(p Principal, calls []rpcCall) *Challenge {
	who := p.Subject
	if who == "" {
		who = "client:" + p.ClientID
	}
	for _, c := range calls {
		if c.method != "tools/call" {
			continue
		}
		lim, key := t.byTool[c.target], who
		if lim == nil {
			if t.any == nil {
				continue
			}
			// One table for every tool: the key carries the tool.
			lim, key = t.any, who+"\x00"+c.target
		}
		if d := lim.AllowKey(key); !d.OK {
			return &Challenge{Status: http.StatusTooManyRequests, Description: "too many calls of this tool; try again later",
				RetryAfter: d.RetryAfter, outcome: OutcomeRateLimited}
		}
	}
	return nil
}

// ToolLabel maps a tool name to the closed label set of metrics: the tools
// named in MethodScopes, ToolLimits and MetricTools are themselves, every
// other name (including one a client made up) is OtherTool.
func (g *Guard) ToolLabel(tool string) string {
	if g.toolLabels[tool] {
		return tool
	}
	return OtherTool
}
