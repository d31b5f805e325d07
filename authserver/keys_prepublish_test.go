package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

func tokenKid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _, _ := jwsParts(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

func jwksKids(t *testing.T, k *KeySet) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(k.JWKSJSON(), &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, key := range set.Keys {
		out = append(out, key.Kid)
	}
	return out
}

// TestKeySetPrePublication: a rotation on one instance publishes the new
// key on every instance (from its next reload) before any instance signs
// with it, so at no moment does a token carry a kid missing from a JWKS
// (the reload interval plus the JWKS max-age fit in the window).
func TestKeySetPrePublication(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := openKeysTestStore(t)
	cfg := KeyConfig{PublishFor: time.Hour, ReloadEvery: time.Minute, Now: clock.Now, Logger: quietLogger()}
	a, err := NewKeySet(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeySet(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.PrePublish(), 2*time.Minute+JWKSMaxAge; got != want {
		t.Fatalf("default pre-publication %s, want %s", got, want)
	}
	if got := a.PrePublish(); got <= cfg.ReloadEvery+a.JWKSMaxAge() {
		t.Fatalf("window %s not longer than the reload interval plus the max-age %s", got, a.JWKSMaxAge())
	}
	oldTok, _ := a.Sign(ctx, map[string]any{}, "at+jwt")
	oldKid := tokenKid(t, oldTok)

	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	kidsA := jwksKids(t, a)
	if len(kidsA) != 2 || kidsA[0] != oldKid {
		t.Fatalf("A's JWKS after rotation %v: want the active %s first, then the pre-published key", kidsA, oldKid)
	}
	newKid := kidsA[1]
	// Every moment of the window, on both instances: the old key signs and
	// every token verifies at both; B reloads on its schedule.
	for step := time.Duration(0); step < a.PrePublish(); step += 30 * time.Second {
		if step >= cfg.ReloadEvery && !slices.Contains(jwksKids(t, b), newKid) {
			if err := b.Reload(ctx); err != nil { // B's Run tick
				t.Fatal(err)
			}
		}
		for _, signer := range []*KeySet{a, b} {
			tok, err := signer.Sign(ctx, map[string]any{}, "at+jwt")
			if err != nil {
				t.Fatal(err)
			}
			if kid := tokenKid(t, tok); kid != oldKid {
				t.Fatalf("at +%s a token signed with %s before the window passed", step, kid)
			}
		}
		clock.Add(30 * time.Second)
	}
	if !slices.Contains(jwksKids(t, b), newKid) {
		t.Fatal("B never published the new key")
	}
	// Past the window both sign with the new key, which both publish.
	for name, signer := range map[string]*KeySet{"A": a, "B": b} {
		tok, _ := signer.Sign(ctx, map[string]any{}, "at+jwt")
		if kid := tokenKid(t, tok); kid != newKid {
			t.Fatalf("%s signs with %s after the window, want %s", name, kid, newKid)
		}
		for _, verifier := range []*KeySet{a, b} {
			if pub, _, err := verifier.PublicKey(ctx, newKid); err != nil || !verifyStdlib(t, tok, pub, AlgES256) {
				t.Fatalf("%s's token does not verify: %v", name, err)
			}
			if pub, _, err := verifier.PublicKey(ctx, oldKid); err != nil || !verifyStdlib(t, oldTok, pub, AlgES256) {
				t.Fatalf("a token of the retired key does not verify: %v", err)
			}
		}
	}
	if kids := jwksKids(t, a); len(kids) != 2 || kids[0] != newKid {
		t.Fatalf("A's JWKS after activation %v, want %s first", kids, newKid)
	}

	// RotateNow skips the window.
	if err := b.RotateNow(ctx); err != nil {
		t.Fatal(err)
	}
	tok, _ := b.Sign(ctx, map[string]any{}, "at+jwt")
	if kid := tokenKid(t, tok); kid == newKid || kid == oldKid {
		t.Fatalf("RotateNow: B still signs with %s", kid)
	}
}

// An immediate rotation while a key is pre-published wins over it: the
// pending key never signs.
func TestKeySetRotateNowOverPendingKey(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	ks := newTestKeySet(t, openKeysTestStore(t), AlgES256, clock)
	if err := ks.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	pending := jwksKids(t, ks)[1]
	clock.Add(time.Second)
	if err := ks.RotateNow(ctx); err != nil {
		t.Fatal(err)
	}
	now, _ := ks.Sign(ctx, map[string]any{}, "at+jwt")
	clock.Add(ks.PrePublish())
	later, _ := ks.Sign(ctx, map[string]any{}, "at+jwt")
	if tokenKid(t, later) != tokenKid(t, now) || tokenKid(t, later) == pending {
		t.Fatalf("after the pending key's activation: signs with %s (RotateNow key %s, pending %s)", tokenKid(t, later), tokenKid(t, now), pending)
	}
}

func TestKeySetJWKSMaxAgeFollowsWindow(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	for name, tt := range map[string]struct {
		reload, window time.Duration
		maxAge         string
	}{
		"default": {0, 0, "public, max-age=300"},
		"short":   {time.Second, 5 * time.Second, "public, max-age=3"},
		"tight":   {time.Second, 1500 * time.Millisecond, "public, max-age=0"},
	} {
		t.Run(name, func(t *testing.T) {
			ks, err := NewKeySet(ctx, openKeysTestStore(t), KeyConfig{ReloadEvery: tt.reload, PrePublish: tt.window, Now: clock.Now, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			JWKSHandler(ks).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/jwks.json", nil))
			if got := w.Header().Get("Cache-Control"); got != tt.maxAge {
				t.Fatalf("Cache-Control %q, want %q", got, tt.maxAge)
			}
		})
	}
	if _, err := NewKeySet(ctx, openKeysTestStore(t), KeyConfig{ReloadEvery: time.Minute, PrePublish: time.Minute}); err == nil {
		t.Fatal("accepted a window no longer than the reload interval")
	}
	if _, err := NewKeySet(ctx, openKeysTestStore(t), KeyConfig{PrePublish: -time.Second}); err == nil {
		t.Fatal("accepted a negative window")
	}
}
