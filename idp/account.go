package idp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// ReasonUserDisconnected is recorded on a grant the user ended from the
// account page.
const ReasonUserDisconnected = "user_disconnected"

// maxAccountApps bounds the apps listed (a user with more sees the newest).
const maxAccountApps = 200

type accountView struct {
	Name, Email, Method, SignedInAt string
	Apps                            []appView
	Action, LogoutURL, Notice       string
}

type appView struct {
	GrantID, Name, Host, Resource, Connected, LastUsed string
	Scopes                                             []string
}

// serveAccount is the account page: who is signed in and how, the apps the
// account connected (live grants) with Disconnect, and sign-out. It is where
// a sign-in outside an authorization flow lands, and where error pages point.
//
//	GET  {prefix}/account             the page (sign-in first when needed)
//	POST {prefix}/account             action=disconnect&grant=<id>: revoke one grant
func (l *Login) serveAccount(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		l.postAccount(w, r)
		return
	default:
		methodNotAllowed(l, w, r, "GET, HEAD, POST")
		return
	}
	s, ok := l.currentSession(r)
	if !ok {
		l.redirect(w, r, loginURLWith(l.loginPath, l.accountPath))
		return
	}
	notice := ""
	if r.URL.Query().Get("disconnected") == "1" {
		notice = "The app was disconnected. It can no longer use your account until you connect it again."
	}
	l.renderAccount(w, r, s, notice)
}

func (l *Login) renderAccount(w http.ResponseWriter, r *http.Request, s sessionView, notice string) {
	av := &accountView{
		Name: s.Account.Name, Email: s.Account.Email, Method: l.methodLabel(s.Method),
		SignedInAt: s.CreatedAt.UTC().Format("2 Jan 2006 15:04 MST"),
		Action:     l.accountPath, LogoutURL: l.logoutPath, Notice: notice,
	}
	apps, err := l.connectedApps(r.Context(), s.Account.ID)
	if err != nil {
		l.log.Error("idp: listing the account's grants failed", "error", err)
		l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "Your connected apps can't be listed right now. Try again in a moment.")
		return
	}
	av.Apps = apps
	l.render(w, http.StatusOK, "account.html", view{CSRF: sessionToken(s), Account: av}, newNonce(), true)
}

// connectedApps lists the live grants of an account, newest first, with
// each client's name and host.
func (l *Login) connectedApps(ctx context.Context, subject string) ([]appView, error) {
	grants, err := l.store.ListGrants(ctx, "", subject)
	if err != nil {
		return nil, err
	}
	now := l.now()
	grants = slices.DeleteFunc(grants, func(g storage.Grant) bool {
		return g.Subject != subject || g.Revoked() || (!g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt))
	})
	slices.SortFunc(grants, func(a, b storage.Grant) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(grants) > maxAccountApps {
		grants = grants[:maxAccountApps]
	}
	names := map[string]storage.Client{}
	out := make([]appView, 0, len(grants))
	for _, g := range grants {
		c, seen := names[g.ClientID]
		if !seen {
			c, err = l.store.GetClient(ctx, g.ClientID)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			names[g.ClientID] = c
		}
		host := clientHost(g.ClientID, c)
		out = append(out, appView{
			GrantID: g.ID, Name: cmpOr(c.Name, cmpOr(host, "An app")), Host: host,
			Resource: g.Resource, Scopes: g.Scopes,
			Connected: g.CreatedAt.UTC().Format("2 Jan 2006"), LastUsed: lastUsed(g),
		})
	}
	return out, nil
}

// clientHost is where the app lives, as the user can check it: the host of a
// metadata-document client id, else of its first redirect URI.
func clientHost(clientID string, c storage.Client) string {
	for _, s := range append([]string{clientID}, c.RedirectURIs...) {
		if u, err := url.Parse(s); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
			return u.Hostname()
		}
	}
	if len(c.RedirectURIs) > 0 {
		if u, err := url.Parse(c.RedirectURIs[0]); err == nil && u.Scheme != "" {
			return u.Scheme + ":" // a native app's private-use scheme
		}
	}
	return ""
}

// lastUsed is the last time the grant's refresh token was used (rotated),
// else when it was created: access-token use at the guard is not recorded
// (no write on the guard's hot path).
func lastUsed(g storage.Grant) string {
	t := g.CreatedAt
	if g.PreviousRetiredAt.After(t) {
		t = g.PreviousRetiredAt
	}
	return t.UTC().Format("2 Jan 2006 15:04 MST")
}

// methodLabel says how the session signed in, for people.
func (l *Login) methodLabel(m string) string {
	kind, name, _ := strings.Cut(m, ":")
	switch kind {
	case "password":
		return "Email and password"
	case "oidc", "saml":
		if p := l.providers[name]; p != nil {
			return p.DisplayName()
		}
		return name
	}
	return m
}

func (l *Login) postAccount(w http.ResponseWriter, r *http.Request) {
	if !l.checkPost(w, r) {
		return
	}
	s, ok := l.currentSession(r)
	if !ok {
		l.redirect(w, r, loginURLWith(l.loginPath, l.accountPath))
		return
	}
	if r.PostFormValue("action") != "disconnect" {
		l.Error(w, r, http.StatusBadRequest, "invalid_request", "This action is not known.")
		return
	}
	id := r.PostFormValue("grant")
	ctx := r.Context()
	g, err := l.store.GetGrant(ctx, id)
	// Another account's grant is answered exactly like a missing one: the
	// page never confirms that a grant id exists.
	if err != nil || g.Subject != s.Account.ID {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			l.log.Error("idp: reading a grant failed", "error", err)
			l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "The app can't be disconnected right now. Try again in a moment.")
			return
		}
		l.refused(r, storage.AuditEvent{Type: audit.GrantDisconnect, Outcome: "failure", Subject: s.Account.ID, Detail: map[string]string{"reason": "unknown_grant"}})
		l.errorPage(w, r, http.StatusNotFound, "not_found", "App not found", "This app is not connected to your account (it may have been disconnected already).")
		return
	}
	if !g.Revoked() {
		if err := l.store.RevokeGrant(ctx, g.ID, ReasonUserDisconnected, l.now()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			l.log.Error("idp: revoking a grant failed", "error", err)
			l.Error(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "The app can't be disconnected right now. Try again in a moment.")
			return
		}
		l.audit(r, storage.AuditEvent{Type: audit.GrantDisconnected, Outcome: "success", Subject: s.Account.ID, ClientID: g.ClientID,
			Detail: map[string]string{"grant": g.ID}})
	}
	l.redirect(w, r, l.accountPath+"?disconnected=1")
}
