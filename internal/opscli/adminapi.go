package opscli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/mcpauth/caddy-mcpauth/internal/adminwire"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// userID accepts an account id or an email (looked up in the user list).
func (o *cliOpts) userID(ctx context.Context, arg string) (string, error) {
	if !strings.Contains(arg, "@") {
		return arg, nil
	}
	body, err := o.call(ctx, http.MethodGet, "users", nil)
	if err != nil {
		return "", err
	}
	var us []adminwire.UserView
	if err := json.Unmarshal(body, &us); err != nil {
		return "", fmt.Errorf("mcpauth: decoding the user list: %w", err)
	}
	for _, u := range us {
		if strings.EqualFold(u.Email, arg) {
			return u.ID, nil
		}
	}
	return "", fmt.Errorf("mcpauth: no user with email %s", arg)
}

type cliPrinter func(w io.Writer, body []byte) error

func (o *cliOpts) get(ctx context.Context, path string, p cliPrinter) error {
	body, err := o.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return o.print(body, p)
}

func (o *cliOpts) post(ctx context.Context, path string, in any, p cliPrinter) error {
	var r io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	body, err := o.call(ctx, http.MethodPost, path, r)
	if err != nil {
		return err
	}
	return o.print(body, p)
}

func (o *cliOpts) print(body []byte, p cliPrinter) error {
	if o.json {
		_, err := o.env.Stdout.Write(body)
		return err
	}
	return p(o.env.Stdout, body)
}

// adminAddress is --address, else CADDY_ADMIN, else localhost:2019.
func (o *cliOpts) adminAddress() string {
	if o.address != "" {
		return o.address
	}
	if a := o.env.Getenv("CADDY_ADMIN"); a != "" {
		return a
	}
	return o.cfg.DefaultAdmin
}

// call sends one request to the admin API and returns the body of a 2xx
// answer; otherwise the API's error message.
func (o *cliOpts) call(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := o.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, o.apiError(resp)
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("mcpauth: reading the answer: %w", err)
	}
	return out, nil
}

// request sends one request to the admin API (bounded by ctx) and returns
// the response of any status; the caller closes its body.
func (o *cliOpts) request(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	addr := o.adminAddress()
	ep, err := o.cfg.ResolveAdmin(addr)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: invalid admin address %q", addr)
	}
	origin := "http://" + ep.Address
	if ep.Unix {
		origin = "http://127.0.0.1"
	}
	req, err := http.NewRequestWithContext(ctx, method, origin+o.cfg.APIPrefix+path, body)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: invalid admin address %q: %w", addr, err)
	}
	if !ep.Unix {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, ep.Network, ep.Address)
		},
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: cannot reach the admin API at %s (is caddy-mcpauth running? set --address or CADDY_ADMIN): %w", addr, err)
	}
	return resp, nil
}

// apiError is the error of a non-2xx admin API answer.
func (o *cliOpts) apiError(resp *http.Response) error {
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(out, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("mcpauth: the server at %s has no mcp_auth admin API (HTTP 404): is it caddy-mcpauth?", o.adminAddress())
	}
	return fmt.Errorf("mcpauth: admin API answered HTTP %d", resp.StatusCode)
}
