package caddymodule

import (
	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Values of Guard.StepUp.
const (
	stepUpChallenge = config.StepUpChallenge
	stepUpToolError = config.StepUpToolError
)

// RegisterResourceTools records the per-tool scope map of a guarded
// resource, for the consent page and the tool snapshot of grants. Resource
// guards call it while they are provisioned.
func (a *App) RegisterResourceTools(resource string, tools, implies map[string][]string, unmapped []string) {
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
	a.st.tools[n] = authserver.ToolMap{Tools: tools, Implies: implies, Unmapped: unmapped}
}

// toolsListed hands the tools a guard saw its upstream list to the consent
// page of this app's authorization server.
func (a *App) toolsListed(resource string, tools []resourceguard.ListedTool) {
	srv, err := a.Server()
	if err != nil {
		return
	}
	up := make([]authserver.UpstreamTool, len(tools))
	for i, t := range tools {
		up[i] = authserver.UpstreamTool{Name: t.Name, Title: t.Title, Description: t.Description}
	}
	srv.RecordUpstreamTools(resource, up)
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
