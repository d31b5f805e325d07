package cimd

import (
	"net/url"
	"slices"
)

// KnownClient is a major MCP client that identifies itself with a Client ID
// Metadata Document.
type KnownClient struct {
	// Name is the client's product name.
	Name string
	// ClientID is the URL of its published metadata document.
	ClientID string
}

// knownClients is the maintained list of the major clients' metadata
// documents (the vendors' documentation, 2026-12; docs/requirements.md
// "Known clients").
// It is the one place to update when a vendor moves its document: the
// built-in trusted hosts (BuiltinTrustedHosts), the README's table and
// `mcpauth doctor` derive from it. Cursor, mcp-remote and most CLIs
// register through DCR instead.
var knownClients = []KnownClient{
	{Name: "Claude (web, desktop, mobile)", ClientID: "https://claude.ai/oauth/mcp-oauth-client-metadata"},
	{Name: "Claude Code", ClientID: "https://claude.ai/oauth/claude-code-client-metadata"},
	{Name: "ChatGPT", ClientID: "https://chatgpt.com/oauth/client.json"},
	{Name: "VS Code", ClientID: "https://vscode.dev/oauth/client-metadata.json"},
}

// KnownClients returns the major clients' metadata documents (a copy).
func KnownClients() []KnownClient { return slices.Clone(knownClients) }

// BuiltinHostsKeyword, in a trusted hosts list, stands for
// BuiltinTrustedHosts (`trusted_hosts builtin tools.example.com`).
const BuiltinHostsKeyword = "builtin"

// BuiltinTrustedHosts returns the hosts of the known clients' documents,
// sorted and without duplicates: the trusted hosts of policy "trusted" when
// none are configured (claude.ai, chatgpt.com, vscode.dev).
func BuiltinTrustedHosts() []string {
	var out []string
	for _, c := range knownClients {
		u, err := url.Parse(c.ClientID)
		if err != nil {
			continue
		}
		if h := u.Hostname(); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// ExpandTrustedHosts returns the trusted hosts a configuration means: the
// built-in hosts when hosts is empty, else hosts with each
// BuiltinHostsKeyword replaced by the built-in hosts.
func ExpandTrustedHosts(hosts []string) []string {
	if len(hosts) == 0 {
		return BuiltinTrustedHosts()
	}
	var out []string
	for _, h := range hosts {
		add := []string{h}
		if h == BuiltinHostsKeyword {
			add = BuiltinTrustedHosts()
		}
		for _, a := range add {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}
