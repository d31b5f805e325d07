package caddymodule

import (
	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Values of Guard.StepUp.
const (
	stepUpChallenge = "challenge"
	stepUpToolError = "tool_error"
)

// RegisterResourceTools records the per-tool scope map of a guarded
// resource, for the consent page and the tool snapshot of grants. Resource
// guards call it while they are provisioned.
func (a *App) RegisterResourceTools(resource string, tools, implies map[string][]string) {
	if len(tools) == 0 {
		return
	}
	n, err := authserver.NormalizeResource(resource)
	if err != nil {
		return // RegisterResource's resource: buildServer reports it
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	if a.st.tools == nil {
		a.st.tools = map[string]authserver.ToolMap{}
	}
	a.st.tools[n] = authserver.ToolMap{Tools: tools, Implies: implies}
}

// resourceTools is the tool maps registered by guards.
func (a *App) resourceTools() map[string]authserver.ToolMap {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	return a.st.tools
}

// stepUpConfig maps the guard's step_up and tool_snapshot options; app is
// this config's mcp_auth when the guard uses it as the issuer (the tool
// error then links to its step-up page), else nil.
func (g *Guard) stepUpConfig(app *App) resourceguard.StepUpConfig {
	cfg := resourceguard.StepUpConfig{ToolError: g.StepUp == stepUpToolError, ToolSnapshot: g.ToolSnapshot}
	if app != nil {
		cfg.URL = func(p *resourceguard.Principal, scopes []string) string {
			srv, err := app.Server()
			if err != nil {
				return ""
			}
			return srv.StepUpURL(p.GrantID, scopes)
		}
	}
	return cfg
}
