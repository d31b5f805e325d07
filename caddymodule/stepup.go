package caddymodule

import (
	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/config"
)

// Values of Guard.StepUp.
const (
	stepUpChallenge = config.StepUpChallenge
	stepUpToolError = config.StepUpToolError
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

// stepUpURL is the step-up page of this app's authorization server for a
// grant ("" before it is built).
func (a *App) stepUpURL(grantID string, scopes []string) string {
	srv, err := a.Server()
	if err != nil {
		return ""
	}
	return srv.StepUpURL(grantID, scopes)
}
