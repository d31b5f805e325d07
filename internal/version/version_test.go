package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionFromBuildInfo: in-repo builds report vcs.revision and
// vcs.modified; xcaddy builds (the plugin is a dependency) report the
// module version and the commit of a pseudo-version, and a replace.
func TestVersionFromBuildInfo(t *testing.T) {
	main := from(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: modulePath, Version: "v0.3.1-0.20261201120000-abcdef012345+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abcdef0123456789abcdef0123456789abcdef01"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-12-01T12:00:00Z"}}}, "v2.11.9")
	if main.Revision != "abcdef0123456789abcdef0123456789abcdef01" || !main.Modified || main.Time != "2026-12-01T12:00:00Z" || main.Version != "v0.3.1-0.20261201120000-abcdef012345+dirty" {
		t.Fatalf("main module: %+v", main)
	}
	if s := main.String(); !strings.Contains(s, "revision abcdef0123456789abcdef0123456789abcdef01 (modified)") || !strings.Contains(s, "go1.26.8; Caddy v2.11.9") {
		t.Fatalf("String: %q", s)
	}

	dep := from(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "caddy"},
		Deps: []*debug.Module{{Path: "github.com/caddyserver/caddy/v2", Version: "v2.11.9"}, {Path: modulePath, Version: "v0.0.0-20261201120000-0123456789ab"}}}, "v2.11.9")
	if dep.Version != "v0.0.0-20261201120000-0123456789ab" || dep.Revision != "0123456789ab" || dep.Modified {
		t.Fatalf("dependency: %+v", dep)
	}
	tagged := from(&debug.BuildInfo{Main: debug.Module{Path: "caddy"}, Deps: []*debug.Module{{Path: modulePath, Version: "v1.2.0"}}}, "")
	if tagged.Version != "v1.2.0" || tagged.Revision != "" {
		t.Fatalf("tagged dependency: %+v", tagged)
	}
	repl := from(&debug.BuildInfo{Main: debug.Module{Path: "caddy"}, Deps: []*debug.Module{{Path: modulePath, Version: "v0.0.0-00010101000000-000000000000", Replace: &debug.Module{Path: "/src/caddy-mcpauth", Version: "(devel)"}}}}, "")
	if repl.Replaced != "/src/caddy-mcpauth" || repl.Revision != "" {
		t.Fatalf("replaced dependency: %+v", repl)
	}
	none := from(&debug.BuildInfo{Main: debug.Module{Path: "other"}}, "")
	if none.Version != "unknown" {
		t.Fatalf("not built in: %+v", none)
	}
}
