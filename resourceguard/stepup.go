package resourceguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Step-up: what a tools/call gets when the token lacks a scope the tool
// needs, or was consented before the tool appeared (tool snapshot tracking,
// EMA §7.2.1; requirement 31).
//
// The standard answer is a 403 insufficient_scope whose challenge names
// every scope the call needs (RFC 6750 §3.1, MCP "step-up authorization").
// Some clients do not follow it (Claude Code reports "token expired", Codex
// stops), so StepUp.ToolError answers such a tools/call instead with a
// JSON-RPC tool result {isError: true} whose text tells the user what to do
// and links to the authorization server's step-up page (StepUp.URL). The
// user approves there; the client's next refresh carries the wider grant.

// ClaimTools is the access-token claim with the tool snapshot the grant was
// consented with: the names of the mapped tools the token may call (a JSON
// array of strings). Our authorization server sets it for resources with a
// per-tool scope map.
const ClaimTools = "mcp_tools"

// OutcomeToolNotConsented is the outcome of a tools/call of a mapped tool
// outside the token's tool snapshot.
const OutcomeToolNotConsented = "tool_not_consented"

// StepUpConfig configures step-up answers.
type StepUpConfig struct {
	// ToolError answers a tools/call (a single JSON-RPC request, not a
	// batch) that needs step-up with HTTP 200 and a JSON-RPC result
	// {content: [{type: text, text: …}], isError: true} telling the user to
	// approve the wider access at URL, instead of the 403. Other requests
	// keep the 403.
	ToolError bool
	// URL returns the link of the consent page that widens the caller's
	// grant to scopes (every scope the call needs plus the token's). Nil:
	// the text asks the user to connect the application again.
	URL func(p *Principal, scopes []string) string
	// ToolSnapshot makes a tools/call of a tool named in MethodScopes
	// ("tools/call:<tool>") need the tool in the token's ClaimTools: a tool
	// mapped after the user consented is refused with the step-up answer
	// until the user consents again. Tokens without the claim may call no
	// mapped tool. Use it only with an issuer that sets the claim (ours).
	ToolSnapshot bool
}

// stepUp is the guard's step-up state, built by New.
type stepUp struct {
	StepUpConfig
	mapped map[string]bool // tools named in MethodScopes
}

func newStepUp(cfg StepUpConfig, methodScopes map[string][]string) (stepUp, error) {
	s := stepUp{StepUpConfig: cfg}
	for k := range methodScopes {
		if name, ok := strings.CutPrefix(k, "tools/call:"); ok && name != "" {
			if s.mapped == nil {
				s.mapped = map[string]bool{}
			}
			s.mapped[name] = true
		}
	}
	if cfg.ToolSnapshot && len(s.mapped) == 0 {
		return s, errors.New("resourceguard: tool snapshot needs per-tool method scopes (tools/call:<tool>)")
	}
	return s, nil
}

// MappedTools returns the per-tool scope map: for each tool named in
// MethodScopes, every scope a tools/call of it needs (route scopes, those of
// "tools/call" and the tool's own), and the scope hierarchy (transitively
// closed). The authorization server shows it on the consent page.
func (g *Guard) MappedTools() (tools map[string][]string, implies map[string][]string) {
	if len(g.stepUp.mapped) == 0 {
		return nil, nil
	}
	tools = make(map[string][]string, len(g.stepUp.mapped))
	for name := range g.stepUp.mapped {
		need := slices.Clone(g.baseScopes)
		for _, key := range []string{"tools/call", "tools/call:" + name} {
			for _, s := range g.methodScope[key] {
				if !slices.Contains(need, s) {
					need = append(need, s)
				}
			}
		}
		tools[name] = need
	}
	implies = make(map[string][]string, len(g.implied))
	for k, v := range g.implied {
		implies[k] = slices.Clone(v)
	}
	return tools, implies
}

// UnmappedToolScopes are the scopes a tools/call of a tool that no
// "tools/call:<tool>" rule names needs: the base scopes and those of
// "tools/call". The consent page lists the upstream's unmapped tools under
// them.
func (g *Guard) UnmappedToolScopes() []string {
	need := slices.Clone(g.baseScopes)
	for _, s := range g.methodScope["tools/call"] {
		if !slices.Contains(need, s) {
			need = append(need, s)
		}
	}
	return need
}

// rpcRequest is the one JSON-RPC request of a body, as the step-up answer
// needs it.
type rpcRequest struct {
	id     json.RawMessage // nil for a notification
	method string
	tool   string
}

// singleCall returns the one JSON-RPC request of a body that is a single
// message (the guard's one parse, readCalls); a batch or no body gives ok
// false.
func singleCall(calls []rpcCall) (rpcRequest, bool) {
	if len(calls) != 1 || calls[0].batch {
		return rpcRequest{}, false
	}
	c := calls[0]
	req := rpcRequest{method: c.method, tool: c.target}
	if c.request {
		req.id = c.id
	}
	return req, true
}

// checkToolSnapshot refuses a tools/call of a mapped tool that is not in the
// token's tool snapshot (StepUp.ToolSnapshot), with the step-up answer. need
// is every scope the request needs.
func (g *Guard) checkToolSnapshot(r *http.Request, v *verifiedToken, need []string, calls []rpcCall) *Challenge {
	if !g.stepUp.ToolSnapshot {
		return nil
	}
	req, ok := singleCall(calls)
	if !ok {
		// A batch: every tools/call in it must be in the snapshot.
		return g.checkBatchSnapshot(v, need, calls)
	}
	if req.method != "tools/call" || !g.stepUp.mapped[req.tool] || snapshotHas(v.p.Claims, req.tool) {
		return nil
	}
	g.log.Debug("resourceguard: tool outside the consented snapshot", "sub", v.p.Subject, "client_id", v.p.ClientID, "tool", req.tool)
	c := &Challenge{
		Status:      http.StatusForbidden,
		Error:       ErrorInsufficientScope,
		Description: "the tool " + req.tool + " was added after your consent: approve it to continue",
		Scopes:      need,
		outcome:     OutcomeToolNotConsented,
	}
	return g.toolErrorAnswer(r, &v.p, c, req, true)
}

func (g *Guard) checkBatchSnapshot(v *verifiedToken, need []string, calls []rpcCall) *Challenge {
	for _, c := range calls {
		if c.method == "tools/call" && g.stepUp.mapped[c.target] && !snapshotHas(v.p.Claims, c.target) {
			return &Challenge{
				Status:      http.StatusForbidden,
				Error:       ErrorInsufficientScope,
				Description: "a tool of this batch was added after your consent: approve it to continue",
				Scopes:      need,
				outcome:     OutcomeToolNotConsented,
			}
		}
	}
	return nil
}

// snapshotHas reports whether the token's ClaimTools names tool.
func snapshotHas(claims map[string]any, tool string) bool {
	list, _ := claims[ClaimTools].([]any)
	for _, t := range list {
		if s, _ := t.(string); s == tool {
			return true
		}
	}
	return false
}

// stepUpChallenge is the answer to a request lacking scopes: the 403, or,
// with StepUp.ToolError and a single tools/call, the tool error.
func (g *Guard) stepUpChallenge(r *http.Request, p *Principal, c *Challenge, calls []rpcCall) *Challenge {
	if !g.stepUp.ToolError {
		return c
	}
	req, ok := singleCall(calls)
	if !ok {
		return c
	}
	return g.toolErrorAnswer(r, p, c, req, false)
}

// toolErrorAnswer turns c into the tool-error answer when StepUp.ToolError
// is on and req is a tools/call with an id; otherwise it returns c.
func (g *Guard) toolErrorAnswer(_ *http.Request, p *Principal, c *Challenge, req rpcRequest, newTool bool) *Challenge {
	if !g.stepUp.ToolError || req.method != "tools/call" || req.id == nil {
		return c
	}
	scopes := slices.Clone(p.Scopes)
	for _, s := range c.Scopes {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	var missing []string
	for _, s := range c.Scopes {
		if !slices.Contains(p.Scopes, s) {
			missing = append(missing, s)
		}
	}
	tool := sanitizeDescription(req.tool)
	var text strings.Builder
	if newTool {
		fmt.Fprintf(&text, "Access needed: the tool %q is new since you approved this application, and needs your approval before its first use.", tool)
	} else {
		fmt.Fprintf(&text, "Access needed: the tool %q needs the permission %s, which this application was not given.", tool, strings.Join(missing, " "))
	}
	link := ""
	if g.stepUp.URL != nil && p.GrantID != "" {
		link = g.stepUp.URL(p, scopes)
	}
	if link != "" {
		fmt.Fprintf(&text, " Open this link to approve it: %s\nThen try again (the application may need to reconnect once to pick up the new access).", link)
	} else {
		text.WriteString(" Reconnect the application (sign in again) and approve the wider access, then try again.")
	}
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  toolResult      `json:"result"`
	}{"2.0", req.id, toolResult{Content: []toolContent{{Type: "text", Text: text.String()}}, IsError: true}})
	if err != nil {
		return c
	}
	out := *c
	out.toolResult = append(body, '\n')
	return &out
}

type toolResult struct {
	Content []toolContent `json:"content"`
	IsError bool          `json:"isError"`
}

type toolContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// IsToolResult reports whether the refusal is answered as a JSON-RPC tool
// result (StepUp.ToolError) rather than with its status: write it with
// WriteChallenge.
func (c *Challenge) IsToolResult() bool { return c.toolResult != nil }

// writeToolResult writes the tool-error answer: 200, a JSON-RPC response.
func writeToolResult(w http.ResponseWriter, c *Challenge) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(c.toolResult)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.toolResult)
}
