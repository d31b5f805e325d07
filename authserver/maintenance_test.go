package authserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// clock is an injectable, settable clock.
type maintClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *maintClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *maintClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func openMaintStore(t *testing.T, clk *maintClock) *bboltstore.Store {
	t.Helper()
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "m.db"), bboltstore.Options{NoSync: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var maintT0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const maintDay = 24 * time.Hour

func putMaintClient(t *testing.T, st storage.Clients, id string, kind storage.ClientKind, created, lastUsed time.Time) {
	t.Helper()
	c := storage.Client{ID: id, Kind: kind, Name: id, RedirectURIs: []string{"http://127.0.0.1/cb"},
		TokenEndpointAuthMethod: "none", CreatedAt: created, UpdatedAt: created, LastUsedAt: lastUsed}
	if err := st.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func putMaintGrant(t *testing.T, st storage.Grants, id, clientID string, now time.Time) {
	t.Helper()
	g := storage.Grant{ID: id, ClientID: clientID, Subject: "u1", Scopes: []string{"a"}, Resource: "https://r.example/mcp",
		AuthTime: now, RefreshHash: maintSHA(id), CreatedAt: now, RefreshExpiresAt: now.Add(30 * maintDay), ExpiresAt: now.Add(90 * maintDay)}
	if err := st.CreateGrant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

func TestMaintainOnceExpiresStaleDCRClients(t *testing.T) {
	clk := &maintClock{t: maintT0}
	st := openMaintStore(t, clk)
	ctx := context.Background()
	now := maintT0.Add(100 * maintDay)

	putMaintClient(t, st, "dcr-stale", storage.ClientDCR, maintT0, time.Time{})                   // never used, 100 days old
	putMaintClient(t, st, "dcr-used-late", storage.ClientDCR, maintT0, maintT0.Add(95*maintDay))  // used 5 days ago
	putMaintClient(t, st, "dcr-used-early", storage.ClientDCR, maintT0, maintT0.Add(10*maintDay)) // last used 90 days ago
	putMaintClient(t, st, "dcr-new", storage.ClientDCR, maintT0.Add(99*maintDay), time.Time{})    // created yesterday
	putMaintClient(t, st, "owned-old", storage.ClientOwned, maintT0, time.Time{})                 // never expires
	putMaintClient(t, st, "https://c.example/m.json", storage.ClientCIMD, maintT0, time.Time{})   // not a DCR client
	putMaintGrant(t, st, "g-stale", "dcr-stale", maintT0.Add(80*maintDay))
	putMaintGrant(t, st, "g-owned", "owned-old", maintT0.Add(80*maintDay))
	if err := st.PutConsent(ctx, storage.Consent{Subject: "u1", ClientID: "dcr-stale", Scopes: []string{"a"}, GrantedAt: maintT0, ExpiresAt: now.Add(maintDay)}); err != nil {
		t.Fatal(err)
	}

	clk.Set(now)
	res, err := Maintain(ctx, st, MaintenanceConfig{DCRUnusedFor: 30 * maintDay, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClientsDeleted != 2 || res.GrantsRevoked != 1 {
		t.Fatalf("result %+v, want 2 clients deleted, 1 grant revoked", res)
	}
	for id, want := range map[string]bool{"dcr-stale": false, "dcr-used-early": false, "dcr-used-late": true, "dcr-new": true, "owned-old": true, "https://c.example/m.json": true} {
		_, err := st.GetClient(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("client %s present = %v, want %v (%v)", id, got, want, err)
		}
	}
	g, err := st.GetGrant(ctx, "g-stale")
	if err != nil || !g.Revoked() || g.RevokedReason != "client_expired" || !g.RevokedAt.Equal(now) {
		t.Fatalf("grant of the expired client: %+v %v", g, err)
	}
	if g, _ := st.GetGrant(ctx, "g-owned"); g.Revoked() {
		t.Fatal("grant of an owned client revoked")
	}
	if _, err := st.GetConsent(ctx, "u1", "dcr-stale"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("consent of the expired client kept: %v", err)
	}
	evs, _ := st.ListAudit(ctx, storage.AuditQuery{Type: "client.expired"})
	if len(evs) != 2 {
		t.Fatalf("audit: %+v", evs)
	}
	for _, e := range evs {
		if e.Detail["kind"] != "dcr" || e.Detail["unused_since"] == "" || !e.Time.Equal(now) {
			t.Errorf("audit event %+v", e)
		}
	}

	// A second round has nothing left to do.
	res, err = Maintain(ctx, st, MaintenanceConfig{DCRUnusedFor: 30 * maintDay, Now: clk.Now})
	if err != nil || res.ClientsDeleted != 0 {
		t.Fatalf("second round: %+v %v", res, err)
	}
}

func TestMaintainOnceOptions(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name        string
		cfg         MaintenanceConfig
		wantClients int // deleted
		wantAudit   []string
	}{
		{"DCR expiry off keeps clients", MaintenanceConfig{}, 0, []string{"new", "mid"}},
		{"bounded per round", MaintenanceConfig{DCRUnusedFor: maintDay, MaxClients: 2}, 2, []string{"new", "mid"}},
		{"audit retention custom", MaintenanceConfig{AuditRetention: 10 * maintDay}, 0, []string{"new"}},
		{"audit kept forever", MaintenanceConfig{AuditRetention: -1}, 0, []string{"new", "mid", "ancient"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &maintClock{t: maintT0}
			st := openMaintStore(t, clk)
			now := maintT0.Add(200 * maintDay)
			for _, id := range []string{"d1", "d2", "d3"} {
				putMaintClient(t, st, id, storage.ClientDCR, maintT0, time.Time{})
			}
			if err := st.AppendAudit(ctx,
				storage.AuditEvent{Time: now.Add(-150 * maintDay), Type: "ancient"},
				storage.AuditEvent{Time: now.Add(-30 * maintDay), Type: "mid"},
				storage.AuditEvent{Time: now.Add(-time.Hour), Type: "new"},
			); err != nil {
				t.Fatal(err)
			}
			clk.Set(now)
			c.cfg.Now = clk.Now
			res, err := Maintain(ctx, st, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.ClientsDeleted != c.wantClients {
				t.Fatalf("deleted %d clients, want %d", res.ClientsDeleted, c.wantClients)
			}
			evs, _ := st.ListAudit(ctx, storage.AuditQuery{Limit: 100})
			var got []string
			for _, e := range evs {
				if e.Type != "client.expired" {
					got = append(got, e.Type)
				}
			}
			if len(got) != len(c.wantAudit) {
				t.Fatalf("audit kept %v, want %v", got, c.wantAudit)
			}
			for i := range got {
				if got[i] != c.wantAudit[i] {
					t.Fatalf("audit kept %v, want %v", got, c.wantAudit)
				}
			}
		})
	}
}

func TestMaintainOnceDeletesExpiredRecords(t *testing.T) {
	clk := &maintClock{t: maintT0}
	st := openMaintStore(t, clk)
	ctx := context.Background()
	if err := st.CreateSession(ctx, storage.Session{Hash: maintSHA("s1"), AccountID: "u1", CreatedAt: maintT0, LastSeenAt: maintT0, ExpiresAt: maintT0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSession(ctx, storage.Session{Hash: maintSHA("s2"), AccountID: "u1", CreatedAt: maintT0, LastSeenAt: maintT0, ExpiresAt: maintT0.Add(10 * maintDay)}); err != nil {
		t.Fatal(err)
	}
	clk.Set(maintT0.Add(2 * time.Hour))
	res, err := Maintain(ctx, st, MaintenanceConfig{Now: clk.Now})
	if err != nil || res.Expired != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := st.GetSession(ctx, maintSHA("s2")); err != nil {
		t.Fatalf("live session removed: %v", err)
	}
}

func TestRunMaintenanceLoop(t *testing.T) {
	clk := &maintClock{t: maintT0}
	st := openMaintStore(t, clk)
	putMaintClient(t, st, "dcr-old", storage.ClientDCR, time.Now().Add(-60*maintDay), time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunMaintenance(ctx, st, MaintenanceConfig{Every: time.Hour, DCRUnusedFor: 30 * maintDay, Logger: slog.New(slog.DiscardHandler)})
		close(done)
	}()
	// The first round runs at once.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := st.GetClient(context.Background(), "dcr-old"); errors.Is(err, storage.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first maintenance round did not delete the stale client")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func maintSHA(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
