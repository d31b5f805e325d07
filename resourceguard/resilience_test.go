package resourceguard

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Requirement 29: a guard against an external issuer starts while the
// issuer is down, answers 503 with Retry-After until it has keys, retries
// with bounded exponential back-off without a network call on the request
// path, keeps the last good set in storage and recovers by itself.

// waitFetch waits for the background fetch a request may have started.
func waitFetch(t testing.TB, s *RemoteKeySource) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.refreshing.Load() {
		if time.Now().After(deadline) {
			t.Fatal("background fetch never ended")
		}
		time.Sleep(time.Millisecond)
	}
}

// memStore is a KeySetStore in memory.
type memStore struct {
	mu     sync.Mutex
	m      map[string][]byte
	stores int
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (m *memStore) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), v...), nil
}

func (m *memStore) Store(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = append([]byte(nil), value...)
	m.stores++
	return nil
}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stores
}

type remoteFixture struct {
	t     *testing.T
	as    *testAS
	clock *testClock
	src   *RemoteKeySource
	g     *Guard
}

func newRemoteFixture(t *testing.T, as *testAS, opts RemoteOptions) (*remoteFixture, error) {
	t.Helper()
	f := &remoteFixture{t: t, as: as, clock: newClock()}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if opts.Issuer == "" {
		opts.Issuer = as.srv.URL
	}
	opts.Client, opts.Now = as.srv.Client(), f.clock.Now
	src, err := NewRemoteKeySourceWithOptions(ctx, opts)
	if err != nil {
		return nil, err
	}
	f.src = src
	waitFetch(t, src)
	f.g, err = New(Config{Resource: testResource, Issuer: opts.Issuer, Keys: src, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return f, nil
}

func (f *remoteFixture) token(kid string) string {
	c := goodClaims(f.clock.Now())
	c["iss"] = f.as.srv.URL
	key := ecKey
	if kid == "ec2" {
		key = ecKey2
	}
	return sign(f.t, "ES256", key, map[string]any{"alg": "ES256", "kid": kid, "typ": "JWT"}, c)
}

// check runs a guarded request and returns the response as written.
func (f *remoteFixture) check(kid string) *httptest.ResponseRecorder {
	f.t.Helper()
	w := httptest.NewRecorder()
	if _, c := f.g.Check(bearerReq("POST", testResource, f.token(kid))); c != nil {
		f.g.WriteChallenge(w, c)
	} else {
		w.WriteHeader(200)
	}
	return w
}

func TestRemoteStartWhileIssuerDown(t *testing.T) {
	loadKeys(t)
	as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
	as.down.Store(true)
	f, err := newRemoteFixture(t, as, RemoteOptions{AllowUnavailableStart: true, RetryMin: time.Second, RetryMax: 8 * time.Second})
	if err != nil {
		t.Fatalf("did not start while the issuer is down: %v", err)
	}
	if f.src.Available() || as.metaHits.Load() == 0 {
		t.Fatalf("available %v, metadata fetched %d times", f.src.Available(), as.metaHits.Load())
	}

	t.Run("503 with Retry-After, not 401", func(t *testing.T) {
		w := f.check("ec1")
		if w.Code != 503 || w.Header().Get("Retry-After") != "1" || w.Header().Get("WWW-Authenticate") != "" ||
			!strings.Contains(w.Body.String(), "temporarily_unavailable") {
			t.Fatalf("got %d Retry-After %q WWW-Authenticate %q %s", w.Code, w.Header().Get("Retry-After"), w.Header().Get("WWW-Authenticate"), w.Body)
		}
		_, _, err := f.src.PublicKey(context.Background(), "ec1")
		var ue *KeysUnavailableError
		if !errors.Is(err, ErrKeysUnavailable) || !errors.As(err, &ue) || ue.RetryAfter < time.Second {
			t.Fatalf("PublicKey: %v", err)
		}
	})
	t.Run("bounded exponential back-off", func(t *testing.T) {
		// The wait after the n-th failure is RetryMin·2^(n-1) capped at
		// RetryMax, less up to a quarter.
		for n, wait := range []time.Duration{1, 2, 4, 8, 8, 8} {
			wait *= time.Second
			hits := as.metaHits.Load()
			f.clock.Advance(wait*3/4 - time.Millisecond)
			if w := f.check("ec1"); w.Code != 503 {
				t.Fatalf("failure %d: status %d", n+1, w.Code)
			}
			if ra := w2s(f.check("ec1").Header().Get("Retry-After")); ra > wait {
				t.Fatalf("failure %d: Retry-After %s beyond the back-off %s", n+1, ra, wait)
			}
			waitFetch(t, f.src)
			if as.metaHits.Load() != hits {
				t.Fatalf("failure %d: retried after %s, before the back-off %s", n+1, wait*3/4, wait)
			}
			f.clock.Advance(wait/4 + time.Millisecond)
			f.check("ec1")
			waitFetch(t, f.src)
			if as.metaHits.Load() == hits {
				t.Fatalf("failure %d: no retry after %s", n+1, wait)
			}
		}
	})
	t.Run("recovers when the issuer is back", func(t *testing.T) {
		as.down.Store(false)
		f.clock.Advance(8 * time.Second)
		f.check("ec1") // starts the fetch; this request is not held up by it
		waitFetch(t, f.src)
		if w := f.check("ec1"); w.Code != 200 {
			t.Fatalf("after recovery: %d %s", w.Code, w.Body)
		}
		if f.src.JWKSURL() != as.srv.URL+"/jwks.json" {
			t.Fatalf("jwks_uri %q", f.src.JWKSURL())
		}
	})
	t.Run("keeps the keys when the issuer goes down again", func(t *testing.T) {
		as.down.Store(true)
		f.clock.Advance(time.Hour)
		for range 3 {
			if w := f.check("ec1"); w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			waitFetch(t, f.src)
		}
	})
}

func w2s(s string) time.Duration {
	d, err := time.ParseDuration(s + "s")
	if err != nil {
		return -1
	}
	return d
}

// The request path never waits for the issuer, whether a refresh is due, a
// kid is unknown or no key set is known yet.
func TestRemoteHotPathNeverWaits(t *testing.T) {
	loadKeys(t)
	as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
	f, err := newRemoteFixture(t, as, RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	as.mu.Lock()
	as.gate = gate
	as.mu.Unlock()
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)

	f.clock.Advance(time.Hour) // stale: a refresh is due
	start := time.Now()
	if w := f.check("ec1"); w.Code != 200 {
		t.Fatalf("stale keys: %d", w.Code)
	}
	if w := f.check("other"); w.Code != 401 {
		t.Fatalf("unknown kid: %d", w.Code)
	}
	if !f.src.refreshing.Load() {
		t.Fatal("no background fetch in flight")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("requests waited %s for a blocked issuer", d)
	}
	release()
	waitFetch(t, f.src)

	t.Run("no key set yet", func(t *testing.T) {
		as2 := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
		as2.down.Store(true)
		f2, err := newRemoteFixture(t, as2, RemoteOptions{AllowUnavailableStart: true})
		if err != nil {
			t.Fatal(err)
		}
		gate := make(chan struct{})
		as2.mu.Lock()
		as2.gate = gate
		as2.mu.Unlock()
		release := sync.OnceFunc(func() { close(gate) })
		t.Cleanup(release)
		as2.down.Store(false)
		f2.clock.Advance(time.Minute)
		start := time.Now()
		for range 3 {
			if w := f2.check("ec1"); w.Code != 503 {
				t.Fatalf("status %d", w.Code)
			}
		}
		if !f2.src.refreshing.Load() || time.Since(start) > time.Second {
			t.Fatalf("in flight %v after %s", f2.src.refreshing.Load(), time.Since(start))
		}
		release()
		waitFetch(t, f2.src)
		if w := f2.check("ec1"); w.Code != 200 {
			t.Fatalf("after the fetch: %d", w.Code)
		}
	})
}

func TestRemotePersistedKeySet(t *testing.T) {
	loadKeys(t)
	as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
	store := newMemStore()
	key := StoreKey(as.srv.URL, "")
	f, err := newRemoteFixture(t, as, RemoteOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	var doc persistedKeySet
	if err := json.Unmarshal(store.m[key], &doc); err != nil || doc.Issuer != as.srv.URL || doc.JWKSURI != as.srv.URL+"/jwks.json" ||
		doc.Metadata["issuer"] != as.srv.URL || !strings.Contains(string(doc.JWKS), `"ec1"`) || store.count() != 1 {
		t.Fatalf("persisted %d times under %s: %s (%v)", store.count(), key, store.m[key], err)
	}
	if strings.Contains(string(store.m[key]), `"d"`) {
		t.Fatal("private key material persisted")
	}

	t.Run("rewritten only when the keys change", func(t *testing.T) {
		f.clock.Advance(61 * time.Second)
		if !f.src.Refresh(context.Background()) || store.count() != 1 {
			t.Fatalf("unchanged set stored again: %d", store.count())
		}
		as.setKeys(ecJWK("ec1", &ecKey.PublicKey), ecJWK("ec2", &ecKey2.PublicKey))
		f.clock.Advance(61 * time.Second)
		if !f.src.Refresh(context.Background()) || store.count() != 2 {
			t.Fatalf("rotated set stored %d times", store.count())
		}
	})

	t.Run("restart while the issuer is down uses the persisted set", func(t *testing.T) {
		as.down.Store(true)
		// Even a strict source (no AllowUnavailableStart) starts from it.
		f2, err := newRemoteFixture(t, as, RemoteOptions{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		for _, kid := range []string{"ec1", "ec2"} {
			if w := f2.check(kid); w.Code != 200 {
				t.Fatalf("%s: %d %s", kid, w.Code, w.Body)
			}
		}
		if md := f2.src.AuthorizationServerMetadata(); md["jwks_uri"] != as.srv.URL+"/jwks.json" {
			t.Fatalf("metadata %v", md)
		}
		if w := f2.check("nope"); w.Code != 401 {
			t.Fatalf("unknown kid: %d", w.Code)
		}
		// The issuer comes back with a rotated set: picked up on schedule.
		as.setKeys(ecJWK("ec2", &ecKey2.PublicKey))
		as.down.Store(false)
		f2.clock.Advance(2 * time.Minute)
		f2.check("ec2")
		waitFetch(t, f2.src)
		if w := f2.check("ec1"); w.Code != 401 {
			t.Fatalf("retired key after recovery: %d", w.Code)
		}
		if w := f2.check("ec2"); w.Code != 200 {
			t.Fatalf("after recovery: %d", w.Code)
		}
	})

	t.Run("another issuer's or a damaged set is not used", func(t *testing.T) {
		as.down.Store(true)
		defer as.down.Store(false)
		good := store.m[key]
		var d map[string]any
		if err := json.Unmarshal(good, &d); err != nil {
			t.Fatal(err)
		}
		d["issuer"] = "https://evil.example"
		other, _ := json.Marshal(d)
		for name, blob := range map[string][]byte{
			"other issuer": other,
			"not JSON":     []byte("{"),
			"no keys":      []byte(`{"version":1,"issuer":"` + as.srv.URL + `","jwks_uri":"` + as.srv.URL + `/jwks.json","jwks":{"keys":[]}}`),
			"version 2":    []byte(strings.Replace(string(good), `"version":1`, `"version":2`, 1)),
		} {
			t.Run(name, func(t *testing.T) {
				st := newMemStore()
				st.m[key] = blob
				f3, err := newRemoteFixture(t, as, RemoteOptions{Store: st, AllowUnavailableStart: true})
				if err != nil {
					t.Fatal(err)
				}
				if w := f3.check("ec2"); w.Code != 503 {
					t.Fatalf("status %d", w.Code)
				}
			})
		}
		// Keys are per issuer: another issuer finds nothing under its key.
		if StoreKey("https://evil.example", "") == key || StoreKey(as.srv.URL, as.srv.URL+"/jwks.json") == key {
			t.Fatal("store keys collide")
		}
	})
}

// Run recovers with no request at all.
func TestRemoteRunRecovers(t *testing.T) {
	loadKeys(t)
	as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
	as.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := NewRemoteKeySourceWithOptions(ctx, RemoteOptions{Issuer: as.srv.URL, Client: as.srv.Client(),
		AllowUnavailableStart: true, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go src.Run(ctx)
	time.Sleep(300 * time.Millisecond)
	as.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for !src.Available() {
		if time.Now().After(deadline) {
			t.Fatal("never recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	waitFetch(t, src)
	hits := as.jwksHits.Load() + as.metaHits.Load()
	as.down.Store(true)
	time.Sleep(300 * time.Millisecond)
	src.PublicKey(context.Background(), "nope")
	if n := as.jwksHits.Load() + as.metaHits.Load(); n != hits {
		t.Fatalf("%d fetches after the source's context ended", n-hits)
	}
}

func TestChallengeRetryAfter(t *testing.T) {
	g := newFixture(t, nil).g
	for _, c := range []struct {
		after time.Duration
		want  string
	}{{0, "5"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {2 * time.Minute, "120"}} {
		w := httptest.NewRecorder()
		g.WriteChallenge(w, &Challenge{Status: http.StatusServiceUnavailable, RetryAfter: c.after})
		if got := w.Header().Get("Retry-After"); got != c.want {
			t.Fatalf("RetryAfter %s: header %q, want %q", c.after, got, c.want)
		}
	}
}

func FuzzDecodePersisted(f *testing.F) {
	loadKeys(f)
	const iss = "https://as.example"
	good, _ := json.Marshal(persistedKeySet{Version: 1, Issuer: iss, JWKSURI: iss + "/jwks",
		JWKS: mustJSON(map[string]any{"keys": []any{ecJWK("k", &ecKey.PublicKey)}})})
	f.Add(good)
	f.Add([]byte(`{"version":1,"issuer":"https://as.example","jwks_uri":"http://as.example/jwks","jwks":{"keys":[]}}`))
	f.Add([]byte(`{"version":1,"jwks":null}`))
	f.Fuzz(func(t *testing.T, blob []byte) {
		doc, keys, _, err := decodePersisted(blob, iss, "", discardLogger())
		if err != nil {
			return
		}
		if doc.Issuer != iss || len(keys) == 0 || checkFetchURL(doc.JWKSURI, iss) != nil {
			t.Fatalf("accepted %q", blob)
		}
	})
}
