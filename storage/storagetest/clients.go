package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testClients(t *testing.T) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newClient("client-1")
		must(t, "CreateClient", b.CreateClient(ctx, c))
		got, err := b.GetClient(ctx, c.ID)
		must(t, "GetClient", err)
		same(t, "GetClient", got, c)
	})
	t.Run("CIMDURLAsID", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newClient("https://app.example/oauth/client-metadata.json")
		c.Kind = storage.ClientCIMD
		must(t, "CreateClient", b.CreateClient(ctx, c))
		got, err := b.GetClient(ctx, c.ID)
		must(t, "GetClient", err)
		same(t, "GetClient", got, c)
	})
	t.Run("CreateDuplicateRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newClient("client-1")
		must(t, "CreateClient", b.CreateClient(ctx, c))
		other := c
		other.Name = "Impostor"
		other.RedirectURIs = []string{"https://evil.example/cb"}
		wantErr(t, "CreateClient again", b.CreateClient(ctx, other), storage.ErrAlreadyExists)
		got, err := b.GetClient(ctx, c.ID)
		must(t, "GetClient", err)
		same(t, "client after refused create", got, c)
	})
	t.Run("GetUnknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.GetClient(ctx, "nope")
		wantErr(t, "GetClient", err, storage.ErrNotFound)
	})
	t.Run("PutCreatesAndReplaces", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newClient("client-1")
		c.Kind = storage.ClientOwned
		must(t, "PutClient create", b.PutClient(ctx, c))
		c.Name = "Renamed"
		c.RedirectURIs = []string{"https://new.example/cb"}
		c.UpdatedAt = at(time.Hour)
		must(t, "PutClient replace", b.PutClient(ctx, c))
		got, err := b.GetClient(ctx, c.ID)
		must(t, "GetClient", err)
		same(t, "GetClient", got, c)
	})
	t.Run("ListOrderedByID", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		list, err := b.ListClients(ctx)
		must(t, "ListClients empty", err)
		if len(list) != 0 {
			t.Fatalf("ListClients on an empty store = %d clients", len(list))
		}
		for _, id := range []string{"c", "a", "b"} {
			must(t, "CreateClient", b.CreateClient(ctx, newClient(id)))
		}
		list, err = b.ListClients(ctx)
		must(t, "ListClients", err)
		same(t, "ListClients", list, []storage.Client{newClient("a"), newClient("b"), newClient("c")})
	})
	t.Run("SetDisabled", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newClient("client-1")
		must(t, "CreateClient", b.CreateClient(ctx, c))
		must(t, "SetClientDisabled", b.SetClientDisabled(ctx, c.ID, true, at(time.Hour)))
		got, err := b.GetClient(ctx, c.ID)
		must(t, "GetClient", err)
		c.Disabled, c.UpdatedAt = true, at(time.Hour)
		same(t, "disabled client", got, c)
		must(t, "SetClientDisabled false", b.SetClientDisabled(ctx, c.ID, false, at(2*time.Hour)))
		got, err = b.GetClient(ctx, c.ID)
		must(t, "GetClient", err)
		c.Disabled, c.UpdatedAt = false, at(2*time.Hour)
		same(t, "enabled client", got, c)
	})
	t.Run("SetDisabledUnknownCreatesNothing", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		wantErr(t, "SetClientDisabled", b.SetClientDisabled(ctx, "nope", true, at(0)), storage.ErrNotFound)
		_, err := b.GetClient(ctx, "nope")
		wantErr(t, "GetClient", err, storage.ErrNotFound)
	})
	t.Run("TouchAtMostHourly", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newClient("client-1")
		must(t, "CreateClient", b.CreateClient(ctx, c))
		steps := []struct {
			now  time.Time
			want time.Time
		}{
			{at(time.Hour), at(time.Hour)},                  // first use
			{at(time.Hour + 59*time.Minute), at(time.Hour)}, // within the hour: no write
			{at(2 * time.Hour), at(2 * time.Hour)},          // an hour later: recorded
			{at(3*time.Hour + time.Second), at(3*time.Hour + time.Second)},
		}
		for _, st := range steps {
			must(t, "TouchClient", b.TouchClient(ctx, c.ID, st.now))
			got, err := b.GetClient(ctx, c.ID)
			must(t, "GetClient", err)
			c.LastUsedAt = st.want
			same(t, "client after touch at "+st.now.String(), got, c)
		}
	})
	t.Run("TouchUnknownCreatesNothing", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		wantErr(t, "TouchClient", b.TouchClient(ctx, "nope", at(0)), storage.ErrNotFound)
		_, err := b.GetClient(ctx, "nope")
		wantErr(t, "GetClient", err, storage.ErrNotFound)
	})
	t.Run("Delete", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateClient", b.CreateClient(ctx, newClient("a")))
		must(t, "CreateClient", b.CreateClient(ctx, newClient("b")))
		must(t, "DeleteClient", b.DeleteClient(ctx, "a"))
		_, err := b.GetClient(ctx, "a")
		wantErr(t, "GetClient deleted", err, storage.ErrNotFound)
		wantErr(t, "DeleteClient again", b.DeleteClient(ctx, "a"), storage.ErrNotFound)
		list, err := b.ListClients(ctx)
		must(t, "ListClients", err)
		same(t, "remaining clients", list, []storage.Client{newClient("b")})
	})
}
