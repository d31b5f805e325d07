package caddymodule

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpauth/caddy-mcpauth/internal/discovery"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// The discovery-path rules and the registry of guards' metadata paths are
// internal/discovery's; what stays here needs Caddy's handler chain.

// standalonePRM is the registry of guards in a config without an mcp_auth
// app (every guard then has an external issuer, and no mcp_auth_server
// handler exists to consult it).
var standalonePRM = discovery.NewPRMRegistry()

// nextOrNotFound calls next and writes a JSON 404 when nothing in the rest of
// the chain answered (Caddy would send an empty 200).
func nextOrNotFound(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	tw := &answerTracker{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(tw, r)
	if err == nil && !tw.answered {
		resourceguard.WriteNotFound(w, r)
	}
	return err
}

// answerTracker records whether a response was started.
type answerTracker struct {
	*caddyhttp.ResponseWriterWrapper
	answered bool
}

func (t *answerTracker) WriteHeader(code int) {
	if code >= 200 { // 1xx informational responses do not answer
		t.answered = true
	}
	t.ResponseWriterWrapper.WriteHeader(code)
}

func (t *answerTracker) Write(b []byte) (int, error) {
	t.answered = true
	return t.ResponseWriterWrapper.Write(b)
}

func (t *answerTracker) ReadFrom(r io.Reader) (int64, error) {
	t.answered = true
	return t.ResponseWriterWrapper.ReadFrom(r)
}

// Flush starts the response, as http.ResponseController's does.
func (t *answerTracker) Flush() {
	t.answered = true
	_ = http.NewResponseController(t.ResponseWriterWrapper.ResponseWriter).Flush()
}

// Interface guards
var (
	_ http.Flusher  = (*answerTracker)(nil)
	_ io.ReaderFrom = (*answerTracker)(nil)
)
