package authserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Operator client actions (moved from caddymodule/admin.go): a CIMD client,
// which has no stored record, is disabled by storing a disabled one; an
// unknown non-CIMD id is ErrNotFound; revoking a CIMD client's grants works
// without a record; the grant count counts only live grants.
func TestOperatorClientActions(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const cimdID = "https://app.example/oauth/client.json"
	now := h.clock.Now()
	for i, g := range []storage.Grant{
		{ID: "g-live", ClientID: cimdID, Subject: "alice", ExpiresAt: now.Add(time.Hour)},
		{ID: "g-expired", ClientID: cimdID, Subject: "alice", ExpiresAt: now.Add(-time.Second)},
	} {
		g.RefreshHash = []byte{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}
		g.CreatedAt = now.Add(-2 * time.Hour)
		if err := h.store.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := h.srv.ActiveGrants(ctx, cimdID, ""); err != nil || n != 1 {
		t.Fatalf("ActiveGrants = %d, %v; want 1", n, err)
	}
	for _, id := range []string{"no-such-client", "https://", "https://h.example"} {
		if _, err := h.srv.SetClientDisabled(ctx, id, true); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("disable %q: %v, want ErrNotFound", id, err)
		}
		if _, err := h.srv.RevokeClientGrants(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("revoke %q: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := h.srv.SetClientDisabled(ctx, cimdID, false); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("enable of a never-stored CIMD client: %v", err)
	}
	for range 2 { // the second disable finds the record
		c, err := h.srv.SetClientDisabled(ctx, cimdID, true)
		if err != nil || !c.Disabled || c.Kind != storage.ClientCIMD {
			t.Fatalf("disable CIMD client: %+v %v", c, err)
		}
	}
	if ok, _ := h.srv.Active(ctx, "g-live", cimdID); ok {
		t.Fatal("grant of a disabled CIMD client active")
	}
	if c, err := h.srv.SetClientDisabled(ctx, cimdID, false); err != nil || c.Disabled {
		t.Fatalf("enable: %+v %v", c, err)
	}
	if ok, _ := h.srv.Active(ctx, "g-live", cimdID); !ok {
		t.Fatal("grant inactive after enable")
	}
	if n, err := h.srv.RevokeClientGrants(ctx, cimdID); err != nil || n != 2 {
		t.Fatalf("RevokeClientGrants = %d, %v; want 2 (every unrevoked grant)", n, err)
	}
}

// The newest unretired key, which KeySet's reload starts from.
func TestNewestUnretired(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ks := []storage.SigningKey{
		{ID: "old", CreatedAt: t0},
		{ID: "b", CreatedAt: t0.Add(time.Hour)},
		{ID: "a", CreatedAt: t0.Add(time.Hour)},
		{ID: "retired", CreatedAt: t0.Add(2 * time.Hour), RetiredAt: t0.Add(3 * time.Hour)},
	}
	if i := newestUnretired(ks); i != 1 {
		t.Fatalf("active = %d, want 1 (newest unretired, greater kid on a tie)", i)
	}
	if i := newestUnretired(ks[3:]); i != -1 {
		t.Fatalf("all retired: %d, want -1", i)
	}
}
