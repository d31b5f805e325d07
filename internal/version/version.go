package version

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
)

// modulePath is this plugin's Go module.
const modulePath = "github.com/mcpauth/caddy-mcpauth"

// Info is what a binary knows about the plugin it was built with, from
// runtime/debug.ReadBuildInfo.
type Info struct {
	// Module is the plugin's Go module path.
	Module string `json:"module"`
	// Version is the module version: a tag or pseudo-version when built as
	// a dependency (xcaddy), the VCS-stamped version or "(devel)" when
	// built in this repository.
	Version string `json:"version"`
	// Revision is the VCS commit (vcs.revision when built in a checkout;
	// from the pseudo-version when built as a dependency), empty if unknown.
	Revision string `json:"revision,omitempty"`
	// Modified reports uncommitted changes in the checkout (vcs.modified).
	Modified bool `json:"modified,omitempty"`
	// Time is the commit time (vcs.time), when known.
	Time string `json:"time,omitempty"`
	// Replaced is the replacement (a local path or module@version) when
	// the build replaced the module.
	Replaced string `json:"replaced,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Caddy is Caddy's own version.
	Caddy string `json:"caddy"`
}

// pseudoRevision is the commit prefix ending a Go pseudo-version.
var pseudoRevision = regexp.MustCompile(`-(?:0\.)?\d{14}-([0-9a-f]{12})(?:\+incompatible)?(?:\+dirty)?$`)

// Plugin reports the plugin's version and revision; caddy is Caddy's own
// version (caddy.Version), which this package cannot ask for.
func Plugin(caddy string) Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Module: modulePath, Version: "unknown"}
	}
	return from(bi, caddy)
}

func from(bi *debug.BuildInfo, caddy string) Info {
	v := Info{Module: modulePath, Version: "unknown", GoVersion: bi.GoVersion, Caddy: caddy}
	if bi.Main.Path == modulePath {
		v.Version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				v.Time = s.Value
			}
		}
	} else {
		for _, d := range bi.Deps {
			if d.Path != modulePath {
				continue
			}
			v.Version = d.Version
			if d.Replace != nil {
				v.Replaced = d.Replace.Path
				if d.Replace.Version != "" && d.Replace.Version != "(devel)" {
					v.Replaced += "@" + d.Replace.Version
				}
			}
			break
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if v.Revision == "" {
		if m := pseudoRevision.FindStringSubmatch(v.Version); m != nil && m[1] != "000000000000" {
			v.Revision = m[1]
		}
	}
	return v
}

// String is the one-line form printed by `mcpauth version`.
func (v Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "caddy-mcpauth %s", v.Version)
	if v.Revision != "" {
		fmt.Fprintf(&b, " revision %s", v.Revision)
		if v.Modified {
			b.WriteString(" (modified)")
		}
	}
	if v.Replaced != "" {
		fmt.Fprintf(&b, " replaced by %s", v.Replaced)
	}
	fmt.Fprintf(&b, "; %s; Caddy %s", v.GoVersion, v.Caddy)
	return b.String()
}
