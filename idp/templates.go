package idp

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

//go:embed templates/*.html
var embedded embed.FS

// Template files. layout.html defines "layout"; each page defines "title"
// and "content". An operator's TemplatesDir may replace any of them.
var pageFiles = []string{"login.html", "signup.html", "consent.html", "error.html", "logout.html", "not_allowed.html", "verify_email.html", "account.html", "stepup_done.html"}

const layoutFile = "layout.html"

// view is the data of every page. Exactly one of the page fields is set.
type view struct {
	Lang  string
	Nonce string
	Brand brandView
	// CSRF is the token for the page's forms (field csrf_token).
	CSRF       string
	Login      *loginView
	Signup     *signupView
	Consent    *consentView
	Err        *errorView
	Logout     *logoutView
	NotAllowed *notAllowedView
	Verify     *verifyView
	Account    *accountView

	StepUp *stepUpView
}

type brandView struct {
	ProductName  string
	Initial      string
	LogoURL      template.URL
	SupportURL   template.URL
	SupportEmail string
	// Accent and its derived colours, validated hex values.
	Accent, OnAccent, LinkLight, LinkDark template.CSS
}

type loginView struct {
	Action, ReturnTo, ClientName, Email, Error, Notice string
	SignupURL                                          string
	PasswordLogin, EmailFirst                          bool
	Providers                                          []providerView
}

type providerView struct {
	Name, DisplayName, Action string
	IconURL                   template.URL
}

type signupView struct {
	Action, ReturnTo, ClientName, Email, Name, Error, LoginURL string
	Domains                                                    []string
}

type consentView struct {
	ClientName, ClientIDHost, RedirectHost, Resource, Action string
	UserLabel, Initial, LogoutURL                            string
	LoopbackOnly                                             bool
	// NoRemember hides the "remember this decision" box (the client's
	// policy keeps no consent).
	NoRemember bool
	Scopes     []scopeView
	// StepUp: the page widens an existing grant (the client asked for more
	// through the guard); NewScopes are the scopes it adds.
	StepUp    bool
	NewScopes []string
	// NewTools are the tools the user has not approved before, listed
	// once above the scopes.
	NewTools []string
}

type scopeView struct {
	Name, Description string
	// Tools are the tools of the resource this scope unlocks.
	Tools []toolView
}

type toolView struct {
	Name string
	New  bool
	// Title and Description are the upstream MCP server's (escaped by
	// html/template like everything else).
	Title, Description string
}

// stepUpView is the page after a step-up decision.
type stepUpView struct {
	ClientName string
	Approved   bool
	Scopes     []string
}

type errorView struct {
	Status        int
	Code, Heading string
	Description   string
	// RetryURL resumes the flow the error interrupted (empty: retrying
	// cannot help); AccountURL is the account page.
	RetryURL, AccountURL string
}

type logoutView struct {
	Done                              bool
	Email, Action, ReturnTo, LoginURL string
}

// verifyView is the email verification page. Mode "sent": signup done,
// check your mail; "ready": signup done without a mailer, sign in;
// "confirm": the link's form (password); "pending": the account must verify
// its email before a grant (resend form).
type verifyView struct {
	Mode                                       string
	Email, Token, ReturnTo, ClientName, Action string
	Error, Notice, LoginURL, LogoutURL         string
}

type notAllowedView struct {
	Email, Provider, LoginURL string
}

// loadTemplates parses layout + each page, taking a file from dir when it
// exists there, and checks every page renders with sample data.
func loadTemplates(dir string, sample view) (map[string]*template.Template, error) {
	read := func(name string) ([]byte, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("idp: templates: %w", err)
			}
		}
		return embedded.ReadFile("templates/" + name)
	}
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("idp: templates: %q is not a directory", dir)
		}
	}
	layout, err := read(layoutFile)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*template.Template, len(pageFiles))
	for _, name := range pageFiles {
		page, err := read(name)
		if err != nil {
			return nil, err
		}
		t, err := template.New(layoutFile).Option("missingkey=error").Parse(string(layout))
		if err != nil {
			return nil, fmt.Errorf("idp: templates: %s: %w", layoutFile, err)
		}
		if t, err = t.New(name).Parse(string(page)); err != nil {
			return nil, fmt.Errorf("idp: templates: %s: %w", name, err)
		}
		for _, need := range []string{"layout", "title", "content"} {
			if t.Lookup(need) == nil {
				return nil, fmt.Errorf("idp: templates: %s: template %q is not defined", name, need)
			}
		}
		v := sampleFor(name, sample)
		if err := t.ExecuteTemplate(new(bytes.Buffer), "layout", v); err != nil {
			return nil, fmt.Errorf("idp: templates: %s does not render: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// sampleFor fills the page field a template expects, for validation.
func sampleFor(name string, v view) view {
	switch name {
	case "login.html":
		v.Login = &loginView{Action: "/login", ReturnTo: "/", PasswordLogin: true, Providers: []providerView{{Name: "x", DisplayName: "X", Action: "/login/x"}}, SignupURL: "/signup"}
	case "signup.html":
		v.Signup = &signupView{Action: "/signup", ReturnTo: "/", LoginURL: "/login", Domains: []string{"example.com"}}
	case "consent.html":
		v.Consent = &consentView{ClientName: "App", RedirectHost: "127.0.0.1", Action: "/authorize", UserLabel: "a@example.com", Initial: "A", LoopbackOnly: true,
			Scopes: []scopeView{{Name: "openid", Description: "d", Tools: []toolView{{Name: "t", New: true, Title: "T", Description: "d"}}}}, Resource: "https://mcp.example.com/mcp", LogoutURL: "/logout",
			NewTools: []string{"t"}, NewScopes: []string{"openid"}}
	case "stepup_done.html":
		v.StepUp = &stepUpView{ClientName: "App", Approved: true, Scopes: []string{"openid"}}
	case "error.html":
		v.Err = &errorView{Status: 400, Code: "invalid_request", Heading: "Error", Description: "d", RetryURL: "/authorize", AccountURL: "/account"}
	case "logout.html":
		v.Logout = &logoutView{Email: "a@example.com", Action: "/logout", ReturnTo: "/", LoginURL: "/login"}
	case "verify_email.html":
		v.Verify = &verifyView{Mode: "confirm", Email: "a@example.com", Token: "t", ReturnTo: "/", Action: "/verify-email", LoginURL: "/login", LogoutURL: "/logout"}
	case "account.html":
		v.Account = &accountView{Name: "A", Email: "a@example.com", Method: "Email and password", SignedInAt: "1 Jan 2026", Action: "/account", LogoutURL: "/logout",
			Apps: []appView{{GrantID: "g", Name: "App", Host: "app.example.com", Resource: "https://mcp.example.com/mcp", Scopes: []string{"s"}, Connected: "1 Jan 2026", LastUsed: "1 Jan 2026"}}}
	case "not_allowed.html":
		v.NotAllowed = &notAllowedView{Email: "a@example.com", Provider: "X", LoginURL: "/login"}
	}
	return v
}

// render writes a page with the security headers. formAction: see
// securityHeaders.
func (l *Login) render(w http.ResponseWriter, status int, page string, v view, nonce string, formAction bool) {
	v.Lang = l.cfg.Language
	v.Nonce = nonce
	v.Brand = l.brand
	var buf bytes.Buffer
	if err := l.tmpl[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		l.log.Error("idp: rendering page failed", "page", page, "error", err)
		l.securityHeaders(w, nonce, true)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	l.securityHeaders(w, nonce, formAction)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// brandViewOf derives the page colours from the accent: text on accent
// buttons is white or near-black, whichever contrasts more; link colours are
// the accent darkened (light theme) or lightened (dark theme) until they
// reach WCAG AA contrast (4.5:1) against the card.
func brandViewOf(b Branding) brandView {
	r, g, bl := parseHex(b.AccentColor)
	on := "#ffffff"
	if contrast(lum(r, g, bl), lum(255, 255, 255)) < contrast(lum(r, g, bl), lum(17, 24, 39)) {
		on = "#111827"
	}
	light := adjustFor(r, g, bl, 255, 255, 255, 0)
	dark := adjustFor(r, g, bl, 0x16, 0x1a, 0x22, 255)
	return brandView{
		ProductName:  b.ProductName,
		Initial:      initialOf(b.ProductName),
		LogoURL:      template.URL(b.LogoURL),
		SupportURL:   template.URL(b.SupportURL),
		SupportEmail: b.SupportEmail,
		Accent:       template.CSS(hexColorOf(r, g, bl)),
		OnAccent:     template.CSS(on),
		LinkLight:    template.CSS(light),
		LinkDark:     template.CSS(dark),
	}
}

func parseHex(s string) (r, g, b float64) {
	s = strings.TrimPrefix(s, "#")
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	v, _ := strconv.ParseUint(s, 16, 32)
	return float64(v >> 16 & 0xff), float64(v >> 8 & 0xff), float64(v & 0xff)
}

func hexColorOf(r, g, b float64) string {
	c := func(x float64) uint8 { return uint8(math.Round(math.Max(0, math.Min(255, x)))) }
	return fmt.Sprintf("#%02x%02x%02x", c(r), c(g), c(b))
}

func lum(r, g, b float64) float64 {
	ch := func(c float64) float64 {
		c /= 255
		if c <= 0.03928 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(r) + 0.7152*ch(g) + 0.0722*ch(b)
}

func contrast(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	return (a + 0.05) / (b + 0.05)
}

// adjustFor mixes (r,g,b) toward target (0 black, 255 white) until it has
// 4.5:1 contrast against the background colour.
func adjustFor(r, g, b, br, bg, bb, target float64) string {
	bgL := lum(br, bg, bb)
	for i := 0; i <= 20; i++ {
		t := float64(i) / 20
		cr, cg, cb := r+(target-r)*t, g+(target-g)*t, b+(target-b)*t
		if contrast(lum(cr, cg, cb), bgL) >= 4.5 {
			return hexColorOf(cr, cg, cb)
		}
	}
	return hexColorOf(target, target, target)
}

// scopeDescriptions are the human descriptions of well-known scopes.
var scopeDescriptions = map[string]string{
	"openid":         "Confirm who you are",
	"profile":        "See your name",
	"email":          "See your email address",
	"offline_access": "Stay connected when you are not using it",
	"mcp":            "Use the connected MCP servers on your behalf",
	"mcp:tools":      "Use the tools of the connected MCP servers",
	"mcp:resources":  "Read resources of the connected MCP servers",
	"mcp:prompts":    "Use prompts of the connected MCP servers",
	"read":           "Read data on your behalf",
	"write":          "Change data on your behalf",
}

func describeScopes(scopes []string, custom map[string]string) []scopeView {
	out := make([]scopeView, 0, len(scopes))
	for _, s := range scopes {
		d, ok := custom[s]
		if !ok {
			d, ok = scopeDescriptions[s]
		}
		if !ok {
			switch {
			case strings.HasSuffix(s, ":read") || strings.HasPrefix(s, "read:"):
				d = "Read data on your behalf"
			case strings.HasSuffix(s, ":write") || strings.HasPrefix(s, "write:"):
				d = "Change data on your behalf"
			default:
				d = "Permission requested by the app"
			}
		}
		out = append(out, scopeView{Name: s, Description: d})
	}
	return out
}

// initialOf returns the upper-cased first letter or digit of s ("?" if none).
func initialOf(s string) string {
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return strings.ToUpper(string(r))
		}
	}
	return "?"
}
