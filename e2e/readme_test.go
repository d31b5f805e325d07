package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeCaddyfile is one ```caddyfile block of README.md and the
// <!-- caddyfile-test: <kind> --> marker on the line before it, if any:
//
//	production   the production Caddyfile (validated like any block)
//	in mcp_auth  the content of a global mcp_auth block (wrapped in one)
//	postgres     needs a PostgreSQL server: validated with
//	             MCPAUTH_TEST_POSTGRES_DSN, else only adapted
type readmeCaddyfile struct {
	line int
	kind string
	src  string
}

func readmeCaddyfiles(t *testing.T) []readmeCaddyfile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(`^<!-- caddyfile-test: ([a-z_ ]+) -->$`)
	lines := strings.Split(string(raw), "\n")
	var out []readmeCaddyfile
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```caddyfile" {
			continue
		}
		b := readmeCaddyfile{line: i + 1}
		if i > 0 {
			if m := marker.FindStringSubmatch(lines[i-1]); m != nil {
				b.kind = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		b.src = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// hostNames matches the example host names of the README (not the domain
// of an email address), which the test moves to *.localhost: no ACME, and
// Caddy's internal CA as for any local name.
var hostNames = regexp.MustCompile(`(^|[^@a-z0-9.-])((?:[a-z0-9-]+\.)*)(example\.com|example\.org|internal\.example)\b`)

func loopbackHosts(src string) string {
	return hostNames.ReplaceAllStringFunc(src, func(m string) string {
		sub := hostNames.FindStringSubmatch(m)
		name := strings.TrimSuffix(sub[2], ".")
		if name == "" {
			name = strings.ReplaceAll(sub[3], ".", "-")
		}
		return sub[1] + name + ".localhost"
	})
}

var envRef = regexp.MustCompile(`\{env\.([A-Z0-9_]+)\}`)

// caddyValidate runs the built binary's `validate` (or `adapt`) on a
// Caddyfile with a fresh state directory.
func caddyValidate(t *testing.T, dir, src string, env []string, cmd string) (string, error) {
	t.Helper()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, caddyBin, cmd, "--config", file, "--adapter", "caddyfile")
	c.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	c.Env = append(c.Env, env...)
	out, err := c.CombinedOutput()
	return string(out), err
}

// Every Caddyfile of the README validates with the built binary (item 8),
// its host names moved to loopback: a README that shows a config the
// product refuses fails here.
func TestReadmeCaddyfilesValidate(t *testing.T) {
	binaries(t)
	blocks := readmeCaddyfiles(t)
	if len(blocks) < 8 {
		t.Fatalf("found %d caddyfile blocks in README.md, want at least 8", len(blocks))
	}
	kekFile := filepath.Join(t.TempDir(), "kek")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kekFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	sawProduction := false
	for _, b := range blocks {
		t.Run(fmt.Sprintf("README.md:%d", b.line), func(t *testing.T) {
			src := b.src
			switch b.kind {
			case "", "production", "postgres":
			case "in mcp_auth":
				src = "{\n\tmcp_auth {\n\t\tissuer https://auth.example.com\n\t\tscopes todo:read todo:write\n" + src + "\t}\n}\n"
			default:
				t.Fatalf("unknown marker %q", b.kind)
			}
			if b.kind == "production" {
				sawProduction = true
			}
			src = loopbackHosts(src)
			src = strings.ReplaceAll(src, "/etc/caddy/mcpauth-kek", kekFile)
			var env []string
			for _, m := range envRef.FindAllStringSubmatch(src, -1) {
				env = append(env, m[1]+"=readme-test-value-"+strings.ToLower(m[1]))
			}
			cmd := "validate"
			if b.kind == "postgres" {
				dsn := os.Getenv("MCPAUTH_TEST_POSTGRES_DSN")
				if dsn == "" {
					cmd = "adapt" // no server to validate against; the syntax still must hold
				}
				env = append(env, "MCPAUTH_DSN="+dsn)
			}
			out, err := caddyValidate(t, t.TempDir(), src, env, cmd)
			if err != nil {
				t.Fatalf("caddy-mcpauth %s refused the README's Caddyfile at line %d:\n%s\n--- output ---\n%s", cmd, b.line, src, tail(out, 4000))
			}
		})
	}
	if !sawProduction {
		t.Fatal("README.md has no block marked <!-- caddyfile-test: production -->")
	}
}

// `caddy-mcpauth validate` refuses each configuration that would break
// access silently (requirement 33), naming the Caddyfile line and what to
// do; the same configuration fixed validates.
func TestValidateRefusesSilentBreakage(t *testing.T) {
	binaries(t)
	global := "{\n\tmcp_auth {\n\t\tissuer https://auth.localhost\n\t\tscopes todo:read todo:write\n%s\t}\n}\n\n"
	site := "auth.localhost {\n\tmcp_auth_server\n\tmcp_protect /mcp* {\n\t\tscopes %s\n\t}\n}\n"
	for _, tc := range []struct {
		name, src string
		env       []string
		want      []string
	}{
		{"guard scope not offered", fmt.Sprintf(global, "") + fmt.Sprintf(site, "todo:raed"),
			nil, []string{"Caddyfile:10: mcp_protect: scopes requires scope", "todo:raed", "add it to `mcp_auth { scopes … }`"}},
		{"method_scope typo", fmt.Sprintf(global, "") + "auth.localhost {\n\tmcp_auth_server\n\tmcp_protect /mcp* {\n\t\tmethod_scope tools/call:delete_todo todo:wirte\n\t}\n}\n",
			nil, []string{"Caddyfile:10:", "todo:wirte"}},
		{"unset seeded password", fmt.Sprintf(global, "\t\tlogin {\n\t\t\tuser admin@example.com {env.MCPAUTH_E2E_UNSET} \"Admin\"\n\t\t}\n") + fmt.Sprintf(site, "todo:read"),
			nil, []string{"Caddyfile:6: mcp_auth: login user admin@example.com its password {env.MCPAUTH_E2E_UNSET} is empty", "MCPAUTH_E2E_UNSET is not set"}},
		{"unset client secret", fmt.Sprintf(global, "\t\tclient svc {\n\t\t\tredirect_uri https://svc.localhost/cb\n\t\t\tsecret {env.MCPAUTH_E2E_UNSET}\n\t\t}\n") + fmt.Sprintf(site, "todo:read"),
			nil, []string{"Caddyfile:5: mcp_auth: client", "svc", "its secret {env.MCPAUTH_E2E_UNSET} is empty"}},
		{"server off the issuer's host", fmt.Sprintf(global, "") + "mcp.localhost {\n\tmcp_auth_server\n}\n",
			nil, []string{"Caddyfile:9: mcp_auth_server is on a site that does not serve the issuer's host auth.localhost"}},
		{"guard without an authorization server", "mcp.localhost {\n\tmcp_protect /mcp* {\n\t\tscopes mcp\n\t}\n}\n",
			nil, []string{"Caddyfile:2: mcp_protect needs an authorization server", "no global mcp_auth block"}},
		{"guard on several hosts without resource", fmt.Sprintf(global, "") + "auth.localhost {\n\tmcp_auth_server\n}\n\na.localhost, b.localhost {\n\tmcp_protect /mcp* {\n\t\tscopes todo:read\n\t}\n}\n",
			nil, []string{"Caddyfile:13: mcp_protect needs `resource <url>` here"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := caddyValidate(t, t.TempDir(), tc.src, append(tc.env, "MCPAUTH_E2E_UNSET="), "validate")
			if err == nil {
				t.Fatalf("validate accepted:\n%s\n%s", tc.src, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("validate output does not contain %q:\n%s", w, tail(out, 3000))
				}
			}
		})
	}
	// Fixed, the same shapes validate; a second-host guard takes its site's address.
	ok := fmt.Sprintf(global, "\t\tlogin {\n\t\t\tuser admin@example.com {env.MCPAUTH_E2E_SET} \"Admin\"\n\t\t}\n") + fmt.Sprintf(site, "todo:read") +
		"\ntodo.localhost {\n\tmcp_protect /mcp* {\n\t\tscopes todo:read\n\t}\n}\n"
	if out, err := caddyValidate(t, t.TempDir(), ok, []string{"MCPAUTH_E2E_SET=a-long-password"}, "validate"); err != nil {
		t.Fatalf("validate refused a working config: %v\n%s", err, out)
	}
	out, err := caddyValidate(t, t.TempDir(), ok, []string{"MCPAUTH_E2E_SET=a-long-password"}, "adapt")
	if err != nil || !strings.Contains(out, `"resource":"https://todo.localhost/mcp"`) {
		t.Fatalf("the second host's guard did not take its site's address: %v\n%s", err, tail(out, 3000))
	}
}
