package resourceguard

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Scopes: required per route, and optionally per JSON-RPC method and target
// (MCP tools/call with params.name, prompts/get with params.name,
// resources/read with params.uri). RFC 6750 §3.1 insufficient_scope: the
// challenge's scope lists every scope the operation needs.

// closeHierarchy computes the transitive closure of broader -> narrower.
func closeHierarchy(h map[string][]string) (map[string][]string, error) {
	if len(h) == 0 {
		return nil, nil
	}
	for k, vs := range h {
		if !validScopeToken(k) {
			return nil, fmt.Errorf("resourceguard: invalid scope %q in hierarchy", k)
		}
		for _, v := range vs {
			if !validScopeToken(v) {
				return nil, fmt.Errorf("resourceguard: invalid scope %q in hierarchy", v)
			}
		}
	}
	out := make(map[string][]string, len(h))
	for k := range h {
		seen := map[string]bool{k: true}
		stack := slices.Clone(h[k])
		var implied []string
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[s] {
				continue
			}
			seen[s] = true
			implied = append(implied, s)
			stack = append(stack, h[s]...)
		}
		slices.Sort(implied)
		out[k] = implied
	}
	return out, nil
}

// expandScopes returns the token's scopes plus every scope they imply.
func (g *Guard) expandScopes(scopes []string) map[string]struct{} {
	return expandWith(g.implied, scopes)
}

func expandWith(implied map[string][]string, scopes []string) map[string]struct{} {
	set := make(map[string]struct{}, len(scopes))
	for _, s := range scopes {
		set[s] = struct{}{}
		for _, i := range implied[s] {
			set[i] = struct{}{}
		}
	}
	return set
}

// ToolPolicy is the per-tool part of the guard's scope policy: which scopes
// a tools/call of each tool needs (the route's Scopes, those of the
// "tools/call" method and those of "tools/call:<tool>"), and what a set of
// granted scopes may call, with the scope hierarchy applied. It is
// immutable and safe for concurrent use. The guard uses it to refuse
// tools/call and to filter tools/list results; the consent page can use it
// to say which tools a scope unlocks.
type ToolPolicy struct {
	base    []string            // route scopes plus the tools/call method's
	tools   map[string][]string // tool -> extra scopes ("tools/call:<tool>")
	implied map[string][]string
}

// ToolPolicy returns the guard's per-tool policy (never nil).
func (g *Guard) ToolPolicy() *ToolPolicy { return g.tools }

func newToolPolicy(base []string, methodScope, implied map[string][]string) *ToolPolicy {
	p := &ToolPolicy{base: slices.Clone(base), tools: map[string][]string{}, implied: implied}
	for _, s := range methodScope["tools/call"] {
		if !slices.Contains(p.base, s) {
			p.base = append(p.base, s)
		}
	}
	for k, v := range methodScope {
		if name, ok := strings.CutPrefix(k, "tools/call:"); ok {
			p.tools[name] = v
		}
	}
	return p
}

// HasToolScopes reports whether any tool has scopes of its own.
func (p *ToolPolicy) HasToolScopes() bool { return len(p.tools) > 0 }

// Tools returns the tools that have scopes of their own, sorted.
func (p *ToolPolicy) Tools() []string {
	out := make([]string, 0, len(p.tools))
	for t := range p.tools {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// ScopesFor returns every scope a tools/call of tool needs, in one list (the
// scope of an insufficient_scope challenge): the route's, the method's and
// the tool's own.
func (p *ToolPolicy) ScopesFor(tool string) []string {
	need := slices.Clone(p.base)
	for _, s := range p.tools[tool] {
		if !slices.Contains(need, s) {
			need = append(need, s)
		}
	}
	return need
}

// Allows reports whether a token with the granted scopes may call tool
// (a broader scope satisfies the narrower ones it implies).
func (p *ToolPolicy) Allows(granted []string, tool string) bool {
	return p.allows(expandWith(p.implied, granted), tool)
}

func (p *ToolPolicy) allows(have map[string]struct{}, tool string) bool {
	for _, s := range p.base {
		if _, ok := have[s]; !ok {
			return false
		}
	}
	for _, s := range p.tools[tool] {
		if _, ok := have[s]; !ok {
			return false
		}
	}
	return true
}

// Call is one JSON-RPC message of a request body as the guard's policy read
// it.
type Call struct {
	// Method is the message's method ("" for a response).
	Method string
	// Name is params.name, or params.uri for resources/* methods.
	Name string
	// Request is true when the message has an id (not a notification).
	Request bool
}

// Decision is an allowed request as the guard read it.
type Decision struct {
	// Principal is the verified caller.
	Principal *Principal
	// Calls are the body's JSON-RPC messages, when the guard read the body
	// (it does only when its policy depends on the method or tool, or the
	// request declares MCP 2026-07-28 or later).
	Calls []Call
	// scopes are the token's scopes with the hierarchy applied.
	scopes map[string]struct{}
	// scopeLine is the token's scopes, space-separated (shared, built once
	// per scope claim): the scopes identity header without a join per request.
	scopeLine string
	// listTools: a tools/list result must be filtered.
	listTools bool
	listIDs   []json.RawMessage
	// principal backs Principal: one allocation per request, not two.
	principal Principal
	// call backs Calls for the usual single message.
	call [1]Call
}

// readCalls reads and parses the JSON-RPC body of a POST when the guard's
// policy needs it, or when the request declares a protocol revision that
// mandates the metadata headers, and checks those headers against it. It
// returns nil calls when the body is not read. The body is put back with
// the same bytes (compressed bodies stay compressed).
func (g *Guard) readCalls(r *http.Request, buf []rpcCall) ([]rpcCall, *Challenge) {
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	modern := modernProtocol(r.Header)
	if !g.readsBody && !modern {
		return nil, nil
	}
	if r.ContentLength > g.maxBody {
		return nil, bodyTooLarge()
	}
	body, err := readBody(r.Body, r.ContentLength, g.maxBody)
	_ = r.Body.Close()
	if err != nil {
		// The body is gone: the request cannot be forwarded intact.
		r.Body = http.NoBody
		return nil, invalidRequest("unreadable request body")
	}
	if int64(len(body)) > g.maxBody {
		r.Body = http.NoBody
		return nil, bodyTooLarge()
	}
	restoreBody(r, body)
	plain, ch := g.decodeBody(r.Header, body)
	if ch != nil {
		return nil, ch
	}
	calls, err := parseJSONRPCInto(buf, plain)
	if err != nil {
		g.log.Debug("resourceguard: JSON-RPC body refused", "error", err)
		return nil, invalidRequest("malformed JSON-RPC body")
	}
	if modern || hasMetadataHeaders(r.Header) {
		if err := checkMetadataHeaders(r.Header, calls, modern); err != nil {
			g.log.Debug("resourceguard: MCP header mismatch", "error", err)
			var id json.RawMessage
			if len(calls) == 1 {
				id = calls[0].id
			}
			return nil, headerMismatch(err.Error(), id)
		}
	}
	return calls, nil
}

// maxPreallocBody is the largest Content-Length that readBody allocates
// before reading (MCP requests are a few hundred bytes to a few KiB).
const maxPreallocBody = 64 << 10

// readBody reads at most max+1 bytes of body. With a Content-Length (what
// MCP clients send) it reads into one buffer of that size instead of
// growing one from 512 bytes; a body longer than it declared is read on, so
// the caller sees it whole (or over the limit) either way.
func readBody(body io.Reader, declared, max int64) ([]byte, error) {
	// Only a small declared length is trusted to size the buffer up front:
	// a client declaring a large body and sending little must not make the
	// guard hold that much memory per connection.
	if declared <= 0 || declared > max || declared > maxPreallocBody {
		return io.ReadAll(io.LimitReader(body, max+1))
	}
	// One byte more than declared: a body that ends where it said ends
	// ReadFull early (io.ErrUnexpectedEOF), with no separate read of the end
	// (whose one-byte buffer escaped to the heap through the interface).
	buf := make([]byte, declared+1)
	n, err := io.ReadFull(body, buf)
	switch {
	case err == nil: // longer than declared: read the rest, bounded
		rest, err := io.ReadAll(io.LimitReader(body, max-declared))
		return append(buf, rest...), err
	case err == io.ErrUnexpectedEOF && int64(n) == declared:
		return buf[:n], nil
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return nil, io.ErrUnexpectedEOF // shorter than declared
	default:
		return nil, err
	}
}

// decodeBody returns the body as the upstream will read it: decompressed
// when Content-Encoding is gzip or deflate (bounded by MaxBodyBytes too, so
// that a small compressed body cannot expand without limit). Any other or
// stacked encoding is refused with 415: a body the guard cannot read is
// never passed on unread.
func (g *Guard) decodeBody(h http.Header, body []byte) ([]byte, *Challenge) {
	ces := h["Content-Encoding"] // canonical key
	if len(ces) == 0 {
		return body, nil
	}
	if len(ces) > 1 || strings.Contains(ces[0], ",") {
		return nil, unsupportedEncoding()
	}
	var zr io.Reader
	switch strings.ToLower(strings.TrimSpace(ces[0])) {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, invalidRequest("malformed gzip request body")
		}
		gz.Multistream(false)
		zr = gz
	case "deflate":
		fr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, invalidRequest("malformed deflate request body")
		}
		zr = fr
	default:
		return nil, unsupportedEncoding()
	}
	plain, err := io.ReadAll(io.LimitReader(zr, g.maxBody+1))
	if err != nil {
		return nil, invalidRequest("malformed compressed request body")
	}
	if int64(len(plain)) > g.maxBody {
		return nil, bodyTooLarge()
	}
	return plain, nil
}

func bodyTooLarge() *Challenge {
	return &Challenge{Status: http.StatusRequestEntityTooLarge, Description: "request body too large"}
}

func unsupportedEncoding() *Challenge {
	return &Challenge{Status: http.StatusUnsupportedMediaType, Description: "unsupported Content-Encoding of a JSON-RPC body",
		outcome: OutcomeInvalidRequest}
}

// requiredScopes returns every scope the calls need: the route's scopes plus
// those of each JSON-RPC message (a batch needs the union).
func (g *Guard) requiredScopes(calls []rpcCall) []string {
	need := g.baseScopes
	if len(g.methodScope) == 0 {
		return need
	}
	added := false
	add := func(scopes []string) {
		for _, s := range scopes {
			if !slices.Contains(need, s) {
				if !added {
					need = slices.Clone(need)
					added = true
				}
				need = append(need, s)
			}
		}
	}
	var buf [128]byte
	for _, c := range calls {
		if c.method == "" {
			continue
		}
		add(g.methodScope[c.method])
		if c.target != "" {
			// "method:target", looked up without building a string
			// (the map index of string(bytes) does not allocate).
			key := append(append(append(buf[:0], c.method...), ':'), c.target...)
			add(g.methodScope[string(key)])
		}
	}
	return need
}

func restoreBody(r *http.Request, body []byte) {
	rb := &bodyReader{}
	rb.Reset(body)
	r.Body = rb
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// bodyReader is a request body read from memory (one allocation, where
// io.NopCloser(bytes.NewReader(b)) makes two).
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

// rpcCall is what the scope rules look at in one JSON-RPC message.
type rpcCall struct {
	batch   bool // one message of a batch (its answer is an array)
	method  string
	target  string // params.name, or params.uri for resources/*
	request bool   // has an id
	id      json.RawMessage
}

// parseJSONRPC reads the method and target of each message of a JSON-RPC
// request or batch. It is deliberately stricter than the upstream's parser,
// so that no body can mean one method to us and another to the upstream:
// member names are matched case-insensitively (as Go's encoding/json does)
// and a member present twice in any spelling is refused, as is trailing data
// and anything encoding/json refuses as syntax. Messages without a method
// (responses) need no method scopes. Values the policy does not use
// (arguments, _meta) are validated and skipped, never decoded.
func parseJSONRPC(body []byte) ([]rpcCall, error) { return parseJSONRPCInto(nil, body) }

// parseJSONRPCInto is parseJSONRPC appending to calls (len 0), so that the
// caller can offer room on its stack.
func parseJSONRPCInto(calls []rpcCall, body []byte) ([]rpcCall, error) {
	s := startDoc(body)
	if s.i >= len(s.b) {
		return nil, s.endDoc() // empty body
	}
	switch s.b[s.i] {
	case '{':
		c, err := parseMessage(&s, 0)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	case '[':
		err := s.array(0, func() error {
			if s.b[s.i] != '{' {
				return errors.New("resourceguard: JSON-RPC message is not an object")
			}
			c, err := parseMessage(&s, 1)
			if err != nil {
				return err
			}
			c.batch = true
			calls = append(calls, c)
			return nil
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("resourceguard: body is not a JSON-RPC message")
	}
	if err := s.endDoc(); err != nil {
		return nil, err
	}
	return calls, nil
}

// parseMessage reads one JSON-RPC message (an object at s.i) in one pass.
func parseMessage(s *jscan, depth int) (rpcCall, error) {
	var c rpcCall
	var method, params, id, name, uri [2]int
	twice := errMemberTwice
	err := s.object(depth, func(key []byte, esc bool) error {
		var at *[2]int
		switch m := memberName(key, esc); {
		case m.is("method"):
			at = &method
		case m.is("id"):
			at = &id
		case m.is("params"):
			if params[1] != 0 {
				return twice
			}
			start := s.i
			if s.b[s.i] != '{' {
				err := s.value(depth + 1)
				params = [2]int{start, s.i}
				return err
			}
			err := s.object(depth+1, func(key []byte, esc bool) error {
				var at *[2]int
				switch m := memberName(key, esc); {
				case m.is("name"):
					at = &name
				case m.is("uri"):
					at = &uri
				default:
					return s.value(depth + 2)
				}
				if at[1] != 0 {
					return twice
				}
				var err error
				*at, err = s.span(depth + 2)
				return err
			})
			params = [2]int{start, s.i}
			return err
		default:
			return s.value(depth + 1)
		}
		if at[1] != 0 {
			return twice
		}
		var err error
		*at, err = s.span(depth + 1)
		return err
	})
	if err != nil {
		return c, err
	}
	if id[1] != 0 {
		c.id = s.b[id[0]:id[1]]
		c.request = true
	}
	if method[1] != 0 {
		raw := s.b[method[0]:method[1]]
		if raw[0] != '"' {
			return c, errors.New("resourceguard: method is not a string")
		}
		c.method = methodAt(raw)
		if c.method == "" {
			return c, errors.New("resourceguard: empty method")
		}
	}
	if params[1] != 0 && c.method != "" {
		field, span := "name", name
		if strings.HasPrefix(c.method, "resources/") {
			field, span = "uri", uri
		}
		if span[1] != 0 {
			switch raw := s.b[span[0]:span[1]]; raw[0] {
			case '"':
				c.target = stringAt(raw)
			case 'n': // null: no target, as encoding/json leaves a string
			default:
				return c, fmt.Errorf("resourceguard: params.%s is not a string", field)
			}
		}
	}
	return c, nil
}

// stringAt decodes the JSON string that is exactly raw (already scanned).
func stringAt(raw []byte) string {
	s := &jscan{b: raw}
	content, esc, _ := s.str()
	return strValue(content, esc)
}

// methodAt is stringAt for a method name: the MCP methods a client sends
// on every request come from a table (no copy of the body's bytes).
func methodAt(raw []byte) string {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		if m, ok := wireMethods[string(raw[1:len(raw)-1])]; ok {
			return m
		}
	}
	return stringAt(raw)
}

// errMemberTwice is allocated once: parseMessage runs on every request.
var errMemberTwice = errors.New("resourceguard: member appears twice")
