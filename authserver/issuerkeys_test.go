package authserver

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"sync"
	"testing"
)

// The trusted issuers' keys are fetched by resourceguard.RemoteKeySource
// (its discovery, issuer check and fetch rules are tested in
// resourceguard); the tests here serve it through an http.Client whose
// transport is a fakeJWKSFetcher.

// client is an http.Client answering from f: its documents by URL with 200,
// its errors as transport failures, anything else 404.
func (f *fakeJWKSFetcher) client() *http.Client {
	return &http.Client{Transport: fakeIssuerTransport{f}}
}

type fakeIssuerTransport struct{ f *fakeJWKSFetcher }

func (t fakeIssuerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f, u := t.f, r.URL.String()
	f.mu.Lock()
	f.count[u]++
	err, body, ok := f.errs[u], f.sets[u], false
	if body != nil {
		ok = true
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	if !ok {
		status, body = http.StatusNotFound, []byte(`{"error":"not_found"}`)
	}
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

// memKeyStore is an in-memory resourceguard.KeySetStore (Caddy's storage
// in production), shared by the servers of a restart test.
type memKeyStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memKeyStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(b), nil
}

func (s *memKeyStore) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = bytes.Clone(value)
	return nil
}

func (s *memKeyStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// TestValidateIssuerURL: an issuer is https (http on loopback only) without
// query or fragment.
func TestValidateIssuerURL(t *testing.T) {
	for _, bad := range []string{"http://idp.example.com", "https://idp.example.com?x=1", "ftp://idp.example.com", "https://", "https://u@idp.example.com"} {
		if ValidateIssuerURL(bad) == nil {
			t.Errorf("issuer %q accepted", bad)
		}
	}
	for _, good := range []string{"https://idp.example.com", "https://idp.example.com/tenant", "http://127.0.0.1:8080", "http://localhost/x"} {
		if err := ValidateIssuerURL(good); err != nil {
			t.Errorf("issuer %q refused: %v", good, err)
		}
	}
}
