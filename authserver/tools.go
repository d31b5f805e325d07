package authserver

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Tool-aware consent (requirement 31) and step-up consent.
//
// A resource whose guard has a per-tool scope map registers it here
// (Config.Tools). The consent page then lists the tools each requested scope
// unlocks; the code, the grant and a remembered consent record the tool set
// the user approved (the "tool snapshot" of the enterprise-managed
// authorization extension, §7.2.1); and the access tokens carry it in the
// claim ClaimTools, which the guard checks a tools/call against. A tool that
// appears later under an already granted scope is outside every earlier
// snapshot: its first call needs fresh consent, either a new authorization
// (a remembered consent no longer covers the request, so the page is shown
// again, naming the new tool) or the step-up page below.
//
// The step-up page (GET/POST PathStepUp?grant=<sid>&scope=<scopes>) widens an
// existing grant with the user's consent: the guard links to it from a
// tools/call answered with a tool error (for clients that do not follow a
// 403 insufficient_scope), the user signs in as the grant's subject,
// approves, and the client's next refresh carries the wider scope and tool
// set. A refresh never carries more than the grant: WidenGrant is the only
// way in, and only from this page.

// ClaimTools is the access-token claim holding the tool snapshot: the names
// of the resource's mapped tools the grant was consented with (a JSON array
// of strings, sorted). Absent when the resource has no tool map or the
// snapshot is empty.
const ClaimTools = "mcp_tools"

// PathStepUp is the step-up consent page, relative to Config.PathPrefix.
const PathStepUp = "/consent/step-up"

// maxStepUpScopes bounds the scope parameter of the step-up page.
const maxStepUpScopes = 32

// ToolMap is the per-tool scope map of one resource, as its guard enforces it.
type ToolMap struct {
	// Tools maps a tool name to every scope a call of it needs.
	Tools map[string][]string
	// Implies maps a scope to the narrower scopes it implies (the guard's
	// scope hierarchy, transitively closed).
	Implies map[string][]string
	// Unmapped are the scopes a call of a tool that Tools does not name
	// needs (the guard's base scopes and those of every tools/call). The
	// consent page lists the upstream's unmapped tools under them.
	Unmapped []string
}

// UpstreamTool is a tool as the resource's upstream MCP server listed it
// (its guard passes on what it saw in a tools/list result).
type UpstreamTool struct {
	Name, Title, Description string
}

// maxUpstreamTools bounds the tools kept per resource.
const maxUpstreamTools = 256

// RecordUpstreamTools keeps the tools the upstream of resource listed, for
// the consent page: their titles and descriptions, and the tools no
// per-tool scope names (listed under the scopes every tool call needs).
// They never change what a scope unlocks or the tool snapshot: those come
// from the operator's map. Only a resource with a tool map is recorded;
// each call replaces the previous list.
func (s *Server) RecordUpstreamTools(resource string, tools []UpstreamTool) {
	n, err := NormalizeResource(resource)
	if err != nil {
		return
	}
	if _, ok := s.toolMap(n); !ok {
		return
	}
	m := make(map[string]UpstreamTool, min(len(tools), maxUpstreamTools))
	for _, t := range tools {
		if len(m) == maxUpstreamTools {
			break
		}
		if t.Name != "" {
			m[t.Name] = t
		}
	}
	s.listed.Store(n, m)
}

// upstreamTools is what RecordUpstreamTools kept for resource (nil: none).
func (s *Server) upstreamTools(resource string) map[string]UpstreamTool {
	v, _ := s.listed.Load(resource)
	m, _ := v.(map[string]UpstreamTool)
	return m
}

// unlocked returns the sorted names of the tools that a token with scopes may
// call.
func (m ToolMap) unlocked(scopes []string) []string {
	if len(m.Tools) == 0 {
		return nil
	}
	have := make(map[string]bool, len(scopes))
	for _, s := range scopes {
		have[s] = true
		for _, i := range m.Implies[s] {
			have[i] = true
		}
	}
	var out []string
	for name, need := range m.Tools {
		ok := true
		for _, s := range need {
			if !have[s] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// toolMap returns the tool map of a (normalized) resource.
func (s *Server) toolMap(resource string) (ToolMap, bool) {
	m, ok := s.cfg.Tools[resource]
	return m, ok && len(m.Tools) > 0
}

// toolSnapshot is the tool set that scopes unlock at resource now (nil
// without a tool map).
func (s *Server) toolSnapshot(resource string, scopes []string) []string {
	m, ok := s.toolMap(resource)
	if !ok {
		return nil
	}
	return m.unlocked(scopes)
}

// snapshotCovers reports whether an approved tool set holds every tool that
// scopes unlock at resource now.
func (s *Server) snapshotCovers(approved []string, resource string, scopes []string) bool {
	for _, t := range s.toolSnapshot(resource, scopes) {
		if !slices.Contains(approved, t) {
			return false
		}
	}
	return true
}

// ScopeTools is what the consent page shows for one requested scope.
type ScopeTools struct {
	Scope string
	Tools []ConsentTool
}

// ConsentTool is one tool on the consent page.
type ConsentTool struct {
	Name string
	// New marks a tool the user has not approved before for this client and
	// resource (it appeared since, or its scope is new).
	New bool
	// Title and Description are the upstream's, when its guard saw it list
	// the tool ("" otherwise). The page escapes them.
	Title, Description string
}

// consentTools groups the tools that scopes unlock at resource under the
// requested scopes that they need, beyond the scopes every mapped tool
// needs; a tool needing only those is listed under each of them. approved is
// the earlier snapshot (nil: none, nothing is marked new).
func (s *Server) consentTools(resource string, scopes, approved []string) []ScopeTools {
	m, ok := s.toolMap(resource)
	if !ok {
		return nil
	}
	listed := s.upstreamTools(resource)
	mapped := m.Tools
	if len(listed) > 0 && len(m.Unmapped) > 0 {
		// The upstream's tools that no per-tool scope names need the
		// scopes of every call: list them too (a copy: m is shared).
		ext := maps.Clone(m.Tools)
		for name := range listed {
			if _, ok := ext[name]; !ok {
				ext[name] = m.Unmapped
			}
		}
		m.Tools = ext
	}
	unlocked := m.unlocked(scopes)
	common := map[string]bool{}
	first := true
	for _, need := range m.Tools {
		if first {
			for _, sc := range need {
				common[sc] = true
			}
			first = false
			continue
		}
		for sc := range common {
			if !slices.Contains(need, sc) {
				delete(common, sc)
			}
		}
	}
	var out []ScopeTools
	for _, sc := range scopes {
		st := ScopeTools{Scope: sc}
		for _, name := range unlocked {
			need := m.Tools[name]
			own := slices.ContainsFunc(need, func(n string) bool { return !common[n] })
			if !slices.Contains(need, sc) && !implies(m, sc, need) || own && common[sc] {
				continue
			}
			_, isMapped := mapped[name]
			up := listed[name]
			st.Tools = append(st.Tools, ConsentTool{Name: name, Title: up.Title, Description: up.Description,
				// Only mapped tools are in a snapshot, so only they can be new.
				New: isMapped && approved != nil && !slices.Contains(approved, name)})
		}
		if len(st.Tools) > 0 {
			out = append(out, st)
		}
	}
	return out
}

// implies reports whether sc implies one of need (the hierarchy).
func implies(m ToolMap, sc string, need []string) bool {
	for _, i := range m.Implies[sc] {
		if slices.Contains(need, i) {
			return true
		}
	}
	return false
}

// StepUpResult is what the step-up page tells the user after their decision.
type StepUpResult struct {
	Client   storage.Client
	Approved bool
	Scopes   []string
	Tools    []string
}

// StepUpPages is implemented by a Browser that renders the page shown after a
// step-up decision. Without it a short plain-text page is written.
type StepUpPages interface {
	StepUpDone(w http.ResponseWriter, r *http.Request, res StepUpResult)
}

// serveStepUp is the step-up consent page (see the comment at the top).
func (s *Server) serveStepUp(w http.ResponseWriter, r *http.Request) {
	setAuthorizeHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.cfg.Browser.Error(w, r, http.StatusMethodNotAllowed, oauth.CodeInvalidRequest, "method not allowed")
		return
	}
	q := r.URL.Query()
	grantID := q.Get("grant")
	if len(q["grant"]) != 1 || grantID == "" || len(grantID) > 128 || len(q["scope"]) > 1 {
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "the step-up link is malformed")
		return
	}
	var requested []string
	for _, sc := range strings.Fields(q.Get("scope")) {
		if !validScopeToken(sc) || len(requested) == maxStepUpScopes {
			s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidScope, "the step-up link is malformed")
			return
		}
		if !contains(requested, sc) {
			requested = append(requested, sc)
		}
	}
	id, signedIn := s.cfg.Browser.Identify(r)
	if !signedIn || id.Subject == "" {
		s.cfg.Browser.Login(w, r, LoginRequest{ReturnTo: s.path(PathStepUp) + "?" + r.URL.RawQuery})
		return
	}
	ctx := r.Context()
	g, err := s.store.GetGrant(ctx, grantID)
	now := s.cfg.Now()
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "this access has ended; connect the application again")
		return
	case err != nil:
		s.cfg.Logger.Error("authserver: step-up: get grant", "error", err)
		s.cfg.Browser.Error(w, r, http.StatusServiceUnavailable, oauth.CodeTemporarilyUnavailable, "storage unavailable")
		return
	}
	// Someone else's grant reads like an ended one: the page tells nothing
	// about grants of other users.
	if g.Subject != id.Subject || g.Revoked() || (!g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt)) {
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "this access has ended, or belongs to another account; connect the application again")
		return
	}
	client, err := s.lookupClient(ctx, g.ClientID)
	if err != nil || client.Disabled {
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidClient, "the application is no longer registered")
		return
	}
	target := slices.Clone(g.Scopes)
	for _, sc := range requested {
		if !s.scopeAllowed(sc, client) {
			s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidScope, "scope "+safeName(sc)+" is not allowed for this application")
			return
		}
		if !contains(target, sc) {
			target = append(target, sc)
		}
	}
	tools := s.toolSnapshot(g.Resource, target)
	var newScopes, newTools []string
	for _, sc := range target {
		if !contains(g.Scopes, sc) {
			newScopes = append(newScopes, sc)
		}
	}
	for _, t := range tools {
		if !slices.Contains(g.Tools, t) {
			newTools = append(newTools, t)
		}
	}
	if len(newScopes) == 0 && len(newTools) == 0 {
		s.stepUpDone(w, r, StepUpResult{Client: client, Approved: true, Scopes: g.Scopes, Tools: g.Tools})
		return
	}
	if r.Method == http.MethodGet {
		approved := g.Tools
		if approved == nil {
			approved = []string{}
		}
		page := ConsentPage{
			Client:     client,
			Scopes:     target,
			Resource:   g.Resource,
			Action:     s.path(PathStepUp) + "?" + r.URL.RawQuery,
			User:       id,
			NoRemember: true,
			StepUp:     true,
			NewScopes:  newScopes,
			Tools:      s.consentTools(g.Resource, target, approved),
		}
		if client.Kind == storage.ClientCIMD {
			if u, err := url.Parse(client.ID); err == nil {
				page.ClientIDHost = u.Host
			}
		}
		s.cfg.Browser.Consent(w, r, page)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := s.cfg.Browser.VerifyCSRF(r); err != nil {
		s.cfg.Browser.Error(w, r, http.StatusForbidden, oauth.CodeInvalidRequest, "the form has expired; open the link again")
		return
	}
	if err := r.ParseForm(); err != nil || len(r.PostForm["decision"]) != 1 {
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "malformed form")
		return
	}
	switch r.PostForm.Get("decision") {
	case "approve":
	case "deny":
		s.emit(ctx, r, storage.AuditEvent{Type: audit.ConsentDenied, Outcome: "denied", Subject: id.Subject, ClientID: client.ID,
			Detail: map[string]string{"grant_id": g.ID, "step_up": "true"}})
		s.stepUpDone(w, r, StepUpResult{Client: client})
		return
	default:
		s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "unknown decision")
		return
	}
	widened, err := s.store.WidenGrant(ctx, g.ID, newScopes, newTools, now)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrGrantRevoked) {
			s.cfg.Browser.Error(w, r, http.StatusBadRequest, oauth.CodeInvalidRequest, "this access has ended; connect the application again")
			return
		}
		s.cfg.Logger.Error("authserver: step-up: widen grant", "client_id", client.ID, "error", err)
		s.cfg.Browser.Error(w, r, http.StatusServiceUnavailable, oauth.CodeTemporarilyUnavailable, "storage unavailable")
		return
	}
	s.emit(ctx, r, storage.AuditEvent{Type: audit.ConsentGrant, Outcome: "success", Subject: id.Subject, ClientID: client.ID,
		Detail: map[string]string{"grant_id": g.ID, "step_up": "true", "scope": strings.Join(widened.Scopes, " "),
			"added_scope": strings.Join(newScopes, " "), "added_tools": strings.Join(newTools, " "), "resource": g.Resource}})
	s.stepUpDone(w, r, StepUpResult{Client: client, Approved: true, Scopes: widened.Scopes, Tools: widened.Tools})
}

func (s *Server) stepUpDone(w http.ResponseWriter, r *http.Request, res StepUpResult) {
	if p, ok := s.cfg.Browser.(StepUpPages); ok {
		p.StepUpDone(w, r, res)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if res.Approved {
		_, _ = w.Write([]byte("Access updated. Go back to the application and try again.\n"))
		return
	}
	_, _ = w.Write([]byte("Nothing was changed. You can close this page.\n"))
}

// StepUpURL is the step-up page's URL for a grant and the scopes it needs.
func (s *Server) StepUpURL(grantID string, scopes []string) string {
	return StepUpURL(s.endpoint(""), grantID, scopes)
}

// StepUpURL builds the step-up page's URL from the server's base URL (its
// issuer origin and path prefix, e.g. https://auth.example).
func StepUpURL(base, grantID string, scopes []string) string {
	q := url.Values{"grant": {grantID}}
	if len(scopes) > 0 {
		q.Set("scope", strings.Join(scopes, " "))
	}
	return strings.TrimSuffix(base, "/") + PathStepUp + "?" + q.Encode()
}
