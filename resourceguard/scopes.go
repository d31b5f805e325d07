package resourceguard

import (
	"bytes"
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
	set := make(map[string]struct{}, len(scopes))
	for _, s := range scopes {
		set[s] = struct{}{}
		for _, i := range g.implied[s] {
			set[i] = struct{}{}
		}
	}
	return set
}

// requiredScopes returns every scope the request needs: the route's scopes
// plus, when MethodScopes are configured and the request is a POST, those of
// each JSON-RPC message in the body (a batch needs the union). The body is
// put back with the same bytes.
func (g *Guard) requiredScopes(r *http.Request) ([]string, *Challenge) {
	if len(g.methodScope) == 0 || r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody {
		return g.baseScopes, nil
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, invalidRequest("compressed JSON-RPC bodies are not accepted")
	}
	if r.ContentLength > g.maxBody {
		return nil, &Challenge{Status: http.StatusRequestEntityTooLarge, Description: "request body too large"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
	_ = r.Body.Close()
	if err != nil {
		// The body is gone: the request cannot be forwarded intact.
		r.Body = http.NoBody
		return nil, invalidRequest("unreadable request body")
	}
	if int64(len(body)) > g.maxBody {
		r.Body = http.NoBody
		return nil, &Challenge{Status: http.StatusRequestEntityTooLarge, Description: "request body too large"}
	}
	restoreBody(r, body)
	calls, err := parseJSONRPC(body)
	if err != nil {
		g.log.Debug("resourceguard: JSON-RPC body refused", "error", err)
		return nil, invalidRequest("malformed JSON-RPC body")
	}
	need := g.baseScopes
	added := false
	for _, c := range calls {
		for _, key := range c.keys() {
			for _, s := range g.methodScope[key] {
				if !slices.Contains(need, s) {
					if !added {
						need = slices.Clone(need)
						added = true
					}
					need = append(need, s)
				}
			}
		}
	}
	return need, nil
}

func restoreBody(r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// rpcCall is what the scope rules look at in one JSON-RPC message.
type rpcCall struct {
	method string
	target string // params.name, or params.uri for resources/*
}

func (c rpcCall) keys() []string {
	if c.method == "" {
		return nil
	}
	if c.target == "" {
		return []string{c.method}
	}
	return []string{c.method, c.method + ":" + c.target}
}

// parseJSONRPC reads the method and target of each message of a JSON-RPC
// request or batch. It is deliberately stricter than the upstream's parser,
// so that no body can mean one method to us and another to the upstream:
// member names are matched case-insensitively (as Go's encoding/json does)
// and a member present twice in any spelling is refused, as is trailing data.
// Messages without a method (responses) need no method scopes.
func parseJSONRPC(body []byte) ([]rpcCall, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var calls []rpcCall
	switch body[0] {
	case '{':
		c, err := parseMessage(dec)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for dec.More() {
			c, err := parseMessage(dec)
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("resourceguard: body is not a JSON-RPC message")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("resourceguard: trailing data after JSON-RPC body")
	}
	return calls, nil
}

func parseMessage(dec *json.Decoder) (rpcCall, error) {
	var c rpcCall
	m, err := foldedMembers(dec, "method", "params")
	if err != nil {
		return c, err
	}
	if raw, ok := m["method"]; ok {
		if err := json.Unmarshal(raw, &c.method); err != nil {
			return c, errors.New("resourceguard: method is not a string")
		}
		if c.method == "" {
			return c, errors.New("resourceguard: empty method")
		}
	}
	if raw, ok := m["params"]; ok && c.method != "" {
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 && raw[0] == '{' {
			pdec := json.NewDecoder(bytes.NewReader(raw))
			pm, err := foldedMembers(pdec, "name", "uri")
			if err != nil {
				return c, err
			}
			field := "name"
			if strings.HasPrefix(c.method, "resources/") {
				field = "uri"
			}
			if raw, ok := pm[field]; ok {
				if err := json.Unmarshal(raw, &c.target); err != nil {
					return c, fmt.Errorf("resourceguard: params.%s is not a string", field)
				}
			}
		}
	}
	return c, nil
}

// foldedMembers reads one JSON object from dec and returns the members whose
// names equal one of names case-insensitively, keyed by the canonical name.
// Two members folding to the same name are refused.
func foldedMembers(dec *json.Decoder, names ...string) (map[string]json.RawMessage, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("resourceguard: JSON-RPC message is not an object")
	}
	out := make(map[string]json.RawMessage, len(names))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := t.(string)
		if !ok {
			return nil, errors.New("resourceguard: bad member name")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		for _, n := range names {
			if strings.EqualFold(key, n) {
				if _, dup := out[n]; dup {
					return nil, fmt.Errorf("resourceguard: member %q appears twice", n)
				}
				out[n] = raw
			}
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return out, nil
}
