package resourceguard

import (
	"encoding/base64"
	"errors"
	"net/http"
	"unicode/utf8"
)

// MCP 2026-07-28 request metadata headers (basic/transports/streamable-http,
// "Request Metadata"): Mcp-Method mirrors the body's method and Mcp-Name its
// params.name (tools/call, prompts/get) or params.uri (resources/read). An
// intermediary that reads the body must check that they agree with it and
// refuse a mismatch with 400 and the JSON-RPC error -32020 (HeaderMismatch),
// so that no component routing on the header and none executing the body
// can be made to see two different requests (requirement 26). The guard's
// policy always uses the body's values.

// Header names and the revision that made them mandatory.
const (
	HeaderMCPMethod          = "Mcp-Method"
	HeaderMCPName            = "Mcp-Name"
	HeaderMCPProtocolVersion = "Mcp-Protocol-Version"
	// HeaderMetadataVersion is the first protocol revision whose clients
	// must send Mcp-Method and Mcp-Name.
	HeaderMetadataVersion = "2026-07-28"
)

// JSON-RPC error codes the guard answers with.
const (
	// RPCHeaderMismatch is MCP's HeaderMismatch: the headers disagree with
	// the body, or a required one is missing or malformed.
	RPCHeaderMismatch = -32020
	// rpcInternalError is JSON-RPC's internal error.
	rpcInternalError = -32603
)

// errBadEncoding is returned by DecodeHeaderValue for a malformed value.
var errBadEncoding = errors.New("resourceguard: malformed MCP header value")

// DecodeHeaderValue decodes an Mcp-Name or Mcp-Param-* value: either plain
// (visible ASCII, space and tab, without leading or trailing whitespace) or
// the Base64 sentinel form "=?base64?<standard Base64 with padding>?=" of a
// UTF-8 string. The markers are case-sensitive. A value that is neither is
// an error, as is a sentinel whose content is not canonical Base64 or not
// valid UTF-8.
func DecodeHeaderValue(v string) (string, error) {
	const prefix, suffix = "=?base64?", "?="
	if len(v) >= len(prefix)+len(suffix) && v[:len(prefix)] == prefix && v[len(v)-len(suffix):] == suffix {
		raw, err := base64.StdEncoding.Strict().DecodeString(v[len(prefix) : len(v)-len(suffix)])
		if err != nil || !utf8.Valid(raw) {
			return "", errBadEncoding
		}
		return string(raw), nil
	}
	if v == "" {
		return "", nil
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\t' && (c < 0x20 || c > 0x7e) {
			return "", errBadEncoding
		}
	}
	if v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t' {
		return "", errBadEncoding
	}
	return v, nil
}

// modernProtocol reports whether the request declares a protocol revision
// that mandates the metadata headers (dates compare as strings). A value
// that is not a YYYY-MM-DD date is not modern: the upstream refuses it.
func modernProtocol(h http.Header) bool {
	vs := h[HeaderMCPProtocolVersion]
	if len(vs) != 1 {
		return false
	}
	v := vs[0]
	if len(v) != 10 || v[4] != '-' || v[7] != '-' {
		return false
	}
	for i, c := range []byte(v) {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	return v >= HeaderMetadataVersion
}

// hasMetadataHeaders reports whether the request carries either header.
func hasMetadataHeaders(h http.Header) bool {
	return len(h[HeaderMCPMethod]) > 0 || len(h[HeaderMCPName]) > 0
}

// namedMethod reports whether Mcp-Name is defined (and, for modern
// clients, required) for method.
func namedMethod(method string) bool {
	switch method {
	case "tools/call", "prompts/get", "resources/read":
		return true
	}
	return false
}

// checkMetadataHeaders compares Mcp-Method and Mcp-Name with the messages of
// the body. A header that is present must be a single line and agree with
// every message that carries a method (a batch cannot be mirrored by one
// header unless all its messages agree); a present header with a body of
// responses only is a mismatch. When modern is true (the request declares
// 2026-07-28 or later) the headers are also required: Mcp-Method for every
// request (a message with an id), Mcp-Name for the named methods. The error
// text names the header, never its value.
func checkMetadataHeaders(h http.Header, calls []rpcCall, modern bool) error {
	mvs, nvs := h[HeaderMCPMethod], h[HeaderMCPName]
	if len(mvs) > 1 {
		return errors.New("header mismatch: more than one Mcp-Method header")
	}
	if len(nvs) > 1 {
		return errors.New("header mismatch: more than one Mcp-Name header")
	}
	var method, name string
	if len(mvs) == 1 {
		// Method names are plain tokens: no sentinel encoding.
		method = mvs[0]
		if _, err := DecodeHeaderValue(method); err != nil || method == "" {
			return errors.New("header mismatch: malformed Mcp-Method header")
		}
	}
	if len(nvs) == 1 {
		v, err := DecodeHeaderValue(nvs[0])
		if err != nil || v == "" {
			return errors.New("header mismatch: malformed Mcp-Name header")
		}
		name = v
	}
	withMethod := 0
	for _, c := range calls {
		if c.method == "" {
			continue
		}
		withMethod++
		if len(mvs) == 1 && method != c.method {
			return errors.New("header mismatch: Mcp-Method header does not match the body's method")
		}
		if len(nvs) == 1 && name != c.target {
			return errors.New("header mismatch: Mcp-Name header does not match the body")
		}
		if modern && c.request {
			if len(mvs) == 0 {
				return errors.New("header mismatch: Mcp-Method header is required")
			}
			if len(nvs) == 0 && namedMethod(c.method) && c.target != "" {
				return errors.New("header mismatch: Mcp-Name header is required for this method")
			}
		}
	}
	if withMethod == 0 && (len(mvs) > 0 || len(nvs) > 0) {
		return errors.New("header mismatch: metadata headers on a body without a request")
	}
	return nil
}
