package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func event(typ, sub, client string, when time.Time) storage.AuditEvent {
	return storage.AuditEvent{
		Time: when, Type: typ, Outcome: "ok", Subject: sub, ClientID: client,
		IP: "192.0.2.1", Detail: map[string]string{"k": typ},
	}
}

// types lists the Type of each event, in order.
func types(evs []storage.AuditEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func (s *suite) testAudit(t *testing.T) {
	t.Run("NewestFirstWithFilters", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		// Appended out of time order on purpose.
		must(t, "AppendAudit", b.AppendAudit(ctx,
			event("login.success", "alice", "", at(2*time.Minute)),
			event("token.issued", "alice", "client-1", at(4*time.Minute)),
			event("login.failure", "bob", "", at(1*time.Minute)),
		))
		must(t, "AppendAudit", b.AppendAudit(ctx,
			event("refresh.reuse", "alice", "client-2", at(5*time.Minute)),
			event("login", "carol", "", at(3*time.Minute)),
		))
		cases := []struct {
			name string
			q    storage.AuditQuery
			want []string
		}{
			{"All", storage.AuditQuery{}, []string{"refresh.reuse", "token.issued", "login", "login.success", "login.failure"}},
			{"TypeExact", storage.AuditQuery{Type: "login"}, []string{"login"}},
			{"TypePrefix", storage.AuditQuery{Type: "login."}, []string{"login.success", "login.failure"}},
			{"TypeExactNoMatch", storage.AuditQuery{Type: "login.succ"}, []string{}},
			{"Client", storage.AuditQuery{ClientID: "client-1"}, []string{"token.issued"}},
			{"Subject", storage.AuditQuery{Subject: "alice"}, []string{"refresh.reuse", "token.issued", "login.success"}},
			{"SinceInclusive", storage.AuditQuery{Since: at(3 * time.Minute)}, []string{"refresh.reuse", "token.issued", "login"}},
			{"Limit", storage.AuditQuery{Limit: 2}, []string{"refresh.reuse", "token.issued"}},
			{"Combined", storage.AuditQuery{Subject: "alice", Type: "login.", Since: at(time.Minute)}, []string{"login.success"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := b.ListAudit(ctx, c.q)
				must(t, "ListAudit", err)
				same(t, "ListAudit types", types(got), c.want)
			})
		}
		got, err := b.ListAudit(ctx, storage.AuditQuery{Type: "token.issued"})
		must(t, "ListAudit", err)
		want := event("token.issued", "alice", "client-1", at(4*time.Minute))
		want.ID = got[0].ID
		same(t, "event round trip", got[0], want)
	})
	t.Run("IDs", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		given := event("given", "", "", at(0))
		given.ID = "caller-chosen-id"
		must(t, "AppendAudit", b.AppendAudit(ctx, given))
		for i := range 20 {
			must(t, "AppendAudit", b.AppendAudit(ctx, event(fmt.Sprint("e", i), "", "", at(time.Second))))
		}
		got, err := b.ListAudit(ctx, storage.AuditQuery{})
		must(t, "ListAudit", err)
		if len(got) != 21 {
			t.Fatalf("ListAudit = %d events, want 21", len(got))
		}
		seen := map[string]bool{}
		for _, e := range got {
			if e.ID == "" || seen[e.ID] {
				t.Fatalf("event ID %q empty or repeated", e.ID)
			}
			seen[e.ID] = true
		}
		if last := got[len(got)-1]; last.ID != "caller-chosen-id" {
			t.Fatalf("given ID replaced: %q", last.ID)
		}
		// Same time: the later append comes first.
		if got[0].Type != "e19" || got[19].Type != "e0" {
			t.Fatalf("ties not in reverse append order: %v", types(got))
		}
	})
	t.Run("TiesWithinOneAppend", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "AppendAudit", b.AppendAudit(ctx, event("first", "", "", at(0)), event("second", "", "", at(0))))
		got, err := b.ListAudit(ctx, storage.AuditQuery{})
		must(t, "ListAudit", err)
		same(t, "ListAudit types", types(got), []string{"second", "first"})
	})
	t.Run("DefaultLimit100", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		evs := make([]storage.AuditEvent, 105)
		for i := range evs {
			evs[i] = event(fmt.Sprint("e", i), "", "", at(time.Duration(i)*time.Second))
		}
		must(t, "AppendAudit", b.AppendAudit(ctx, evs...))
		got, err := b.ListAudit(ctx, storage.AuditQuery{})
		must(t, "ListAudit", err)
		if len(got) != 100 || got[0].Type != "e104" || got[99].Type != "e5" {
			t.Fatalf("ListAudit default limit: %d events, %v", len(got), types(got))
		}
		got, err = b.ListAudit(ctx, storage.AuditQuery{Limit: 1000})
		must(t, "ListAudit", err)
		if len(got) != 105 {
			t.Fatalf("ListAudit Limit 1000 = %d events, want 105", len(got))
		}
	})
	t.Run("AppendNothing", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "AppendAudit", b.AppendAudit(ctx))
		got, err := b.ListAudit(ctx, storage.AuditQuery{})
		must(t, "ListAudit", err)
		if len(got) != 0 {
			t.Fatalf("ListAudit = %d events, want 0", len(got))
		}
	})
}
