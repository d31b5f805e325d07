package opscli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/internal/version"
)

// TestWriteVersion: --json is the Info itself, the text form its one line.
func TestWriteVersion(t *testing.T) {
	v := version.Info{Module: "github.com/mcpauth/caddy-mcpauth", Version: "v0.0.0-20261201120000-0123456789ab",
		Revision: "0123456789ab", GoVersion: "go1.26.8", Caddy: "v2.11.9"}
	var b bytes.Buffer
	if err := writeVersion(&b, true, v); err != nil {
		t.Fatal(err)
	}
	var back version.Info
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back != v {
		t.Fatalf("json: %v %+v", err, back)
	}
	b.Reset()
	if err := writeVersion(&b, false, v); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != v.String()+"\n" || !strings.HasPrefix(got, "caddy-mcpauth v0.0.0-20261201120000-0123456789ab revision 0123456789ab") {
		t.Fatalf("text: %q", got)
	}
}
