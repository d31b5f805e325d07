package resourceguard

import "strings"

// knownMethods are the JSON-RPC request methods of MCP (2025-06-18 and
// 2026-07-28, tasks included) that a scope rule may name; notifications
// ("notifications/…") are accepted by prefix.
var knownMethods = map[string]bool{
	"initialize": true, "ping": true,
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true,
	"completion/complete": true, "logging/setLevel": true,
	"sampling/createMessage": true, "elicitation/create": true, "roots/list": true,
	"tasks/get": true, "tasks/list": true, "tasks/result": true, "tasks/cancel": true,
}

// wireMethods maps each known method, and the notifications clients send,
// to itself: the request parser returns these strings instead of copying
// the body's bytes.
var wireMethods = func() map[string]string {
	m := map[string]string{}
	for name := range knownMethods {
		m[name] = name
	}
	for _, name := range []string{"notifications/initialized", "notifications/cancelled",
		"notifications/progress", "notifications/roots/list_changed"} {
		m[name] = name
	}
	return m
}()

// targetMethods are the methods whose target (params.name, or params.uri for
// resources/*) a rule may name after a colon ("tools/call:delete_todo").
var targetMethods = map[string]bool{
	"tools/call": true, "prompts/get": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
}

// CheckMethodScopeKey reports whether a MethodScopes key names an MCP
// method ("tools/call") or a method and its target ("tools/call:add_todo"):
// a misspelt method would never match a request, so its scopes would never
// be required. It returns a short reason, or "" when the key is usable.
func CheckMethodScopeKey(key string) string {
	method, target, hasTarget := strings.Cut(key, ":")
	switch {
	case method == "":
		return "names no method"
	case !knownMethods[method] && !strings.HasPrefix(method, "notifications/"):
		return "method " + method + " is not an MCP method (e.g. tools/call, prompts/get, resources/read)"
	case hasTarget && target == "":
		return "names no " + method + " target after the colon"
	case hasTarget && !targetMethods[method]:
		return "method " + method + " has no target to name (only tools/call, prompts/get and resources/* do)"
	}
	return ""
}
