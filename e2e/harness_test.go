// Package e2e runs caddy-mcpauth as users do: a real Caddy process built from
// this repository, in front of the sample MCP server, reached by real
// clients (golang.org/x/oauth2, the MCP Go SDK; the Node side in e2e/node).
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
)

var (
	binDir    string
	caddyBin  string
	todoBin   string
	repoRoot  string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcpauth-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds caddy-mcpauth and the sample server once per run.
func binaries(t testing.TB) {
	t.Helper()
	buildOnce.Do(func() {
		wd, _ := os.Getwd()
		repoRoot = filepath.Dir(wd)
		caddyBin = filepath.Join(binDir, "caddy-mcpauth")
		todoBin = filepath.Join(binDir, "todo")
		for _, b := range []struct{ out, pkg string }{{caddyBin, "./cmd/caddy-mcpauth"}, {todoBin, "./examples/todo"}} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	// The port is free when chosen but released before use, so the kernel
	// may choose it again: a stack once got the same port for the sample
	// server and Caddy ("bind: address already in use"). A port is handed
	// out at most once per test process.
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port
		}
	}
	t.Fatal("freePort: the kernel kept choosing ports already handed out")
	return 0
}

// handedOut holds the ports freePort returned.
var handedOut sync.Map

// logBuffer collects a process's output for failure reports.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type proc struct {
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
}

func startProc(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{logs: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, tail(p.logs.String(), 6000))
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// caddy is a running caddy-mcpauth process.
type caddy struct {
	*proc
	dir       string
	admin     string
	caddyfile string
	env       []string
}

// startCaddy writes the Caddyfile (with {ADMIN} replaced by a free admin
// address) and runs it until the test ends.
func startCaddy(t testing.TB, dir, caddyfile string, env ...string) *caddy {
	t.Helper()
	binaries(t)
	c := &caddy{dir: dir, admin: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	c.env = append([]string{
		"HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}, env...)
	c.caddyfile = filepath.Join(dir, "Caddyfile")
	c.write(t, caddyfile)
	c.proc = startProc(t, "caddy", c.env, caddyBin, "run", "--config", c.caddyfile, "--adapter", "caddyfile")
	c.waitAdmin(t)
	return c
}

func (c *caddy) write(t testing.TB, caddyfile string) {
	t.Helper()
	caddyfile = strings.ReplaceAll(caddyfile, "{ADMIN}", c.admin)
	if err := os.WriteFile(c.caddyfile, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (c *caddy) waitAdmin(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c.exited() {
			t.Fatalf("caddy exited:\n%s", tail(c.logs.String(), 6000))
		}
		resp, err := http.Get("http://" + c.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("caddy admin endpoint never answered:\n%s", tail(c.logs.String(), 6000))
}

// reload runs `caddy-mcpauth reload` with a new Caddyfile, as an operator does.
func (c *caddy) reload(t testing.TB, caddyfile string) {
	t.Helper()
	c.write(t, caddyfile)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "reload", "--config", c.caddyfile, "--adapter", "caddyfile", "--address", c.admin)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s\n--- server ---\n%s", err, out, tail(c.logs.String(), 6000))
	}
}

// waitHTTP waits until url answers (any status).
func waitHTTP(t testing.TB, client *http.Client, u string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered: %v", u, last)
}

// startTodo runs the sample MCP server on a free loopback port.
func startTodo(t testing.TB) (addr string, p *proc) {
	t.Helper()
	binaries(t)
	addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p = startProc(t, "todo", nil, todoBin, "-addr", addr)
	waitHTTP(t, http.DefaultClient, "http://"+addr+"/healthz")
	return addr, p
}

// browser is a cookie-keeping HTTP client that stops at the client's
// redirect URI, as a user agent hands the code to a native app.
type browser struct {
	*http.Client
	redirectPrefix string
	// decision is what the user answers on a consent page (default approve).
	decision string
	// remember ticks "remember this decision" on a consent page.
	remember bool
}

func newBrowser(t testing.TB, base *http.Client, redirectPrefix string) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{redirectPrefix: redirectPrefix}
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	if base != nil {
		c.Transport = base.Transport
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), b.redirectPrefix) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		return nil
	}
	b.Client = c
	return b
}

// authResult is what arrives at the client's redirect URI.
type authResult struct {
	Query url.Values
	Pages []string // the pages the user went through, for assertions
	// Bodies are those pages' HTML, in the same order.
	Bodies []string
}

// authorize drives the hosted login (and consent, approving it) from the
// authorization URL to the redirect back to the client.
func (b *browser) authorize(t testing.TB, authURL, email, password string) authResult {
	t.Helper()
	var res authResult
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	for step := 0; step < 8; step++ {
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, b.redirectPrefix) {
			resp.Body.Close()
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			res.Query = u.Query()
			return res
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("unexpected %d at %s:\n%s", resp.StatusCode, resp.Request.URL, tail(string(body), 3000))
		}
		f, err := findForm(string(body))
		if err != nil {
			t.Fatalf("no form on %s: %v\n%s", resp.Request.URL, err, tail(string(body), 3000))
		}
		res.Pages = append(res.Pages, resp.Request.URL.Path)
		res.Bodies = append(res.Bodies, string(body))
		vals := f.values
		filled := false
		for name := range f.inputs {
			switch {
			case name == "email" || name == "username" || name == "login":
				vals.Set(name, email)
				filled = true
			case name == "password":
				vals.Set(name, password)
			}
		}
		if !filled {
			// A consent page: approve.
			if _, ok := f.buttons["decision"]; ok {
				d := b.decision
				if d == "" {
					d = "approve"
				}
				vals.Set("decision", d)
			}
			if b.remember {
				vals.Set("remember", "on")
			}
		}
		action, err := resp.Request.URL.Parse(f.action)
		if err != nil {
			t.Fatal(err)
		}
		resp, err = b.PostForm(action.String(), vals)
		if err != nil {
			t.Fatalf("POST %s: %v", action, err)
		}
	}
	t.Fatal("login did not reach the redirect URI")
	return res
}

type form struct {
	action  string
	values  url.Values
	inputs  map[string]bool
	buttons map[string]string
}

// findForm returns the page's main form: the one with a password field,
// else the one with a "decision" button (consent), else the first. It keeps
// the form's action, hidden values (CSRF) and the names of its inputs.
func findForm(page string) (*form, error) {
	z := html.NewTokenizer(strings.NewReader(page))
	var forms []*form
	var cur *form
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		attr := func(k string) string {
			for _, a := range tok.Attr {
				if a.Key == k {
					return a.Val
				}
			}
			return ""
		}
		if tt == html.EndTagToken && tok.Data == "form" {
			cur = nil
			continue
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		switch tok.Data {
		case "form":
			cur = &form{action: attr("action"), values: url.Values{}, inputs: map[string]bool{}, buttons: map[string]string{}}
			forms = append(forms, cur)
		case "input":
			if cur == nil || attr("name") == "" {
				continue
			}
			switch attr("type") {
			case "hidden":
				cur.values.Set(attr("name"), attr("value"))
			case "checkbox", "submit":
			default:
				cur.inputs[attr("name")] = true
			}
		case "button":
			if cur != nil && attr("name") != "" {
				cur.buttons[attr("name")] = attr("value")
			}
		}
	}
	if len(forms) == 0 {
		return nil, errors.New("no <form>")
	}
	for _, f := range forms {
		if f.inputs["password"] {
			return f, nil
		}
	}
	for _, f := range forms {
		if _, ok := f.buttons["decision"]; ok {
			return f, nil
		}
	}
	return forms[0], nil
}
