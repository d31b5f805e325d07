package authserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Maintenance defaults.
const (
	// DefaultAuditRetention is how long audit events are kept.
	DefaultAuditRetention = 90 * 24 * time.Hour
	// DefaultDCRExpireUnused is how long a DCR client may stay unused before
	// maintenance deletes it, when registration is on and nothing else is
	// configured.
	DefaultDCRExpireUnused = 30 * 24 * time.Hour
	// DefaultMaintenanceEvery is the period of the maintenance loop.
	DefaultMaintenanceEvery = time.Hour
	// maxExpiredClientsPerRound bounds the work of one round; the rest waits
	// for the next one.
	maxExpiredClientsPerRound = 500
	// maintenanceRoundTimeout bounds one round.
	maintenanceRoundTimeout = 5 * time.Minute
)

// MaintenanceConfig configures the maintenance rounds.
type MaintenanceConfig struct {
	// Every is the period of RunMaintenance (0: DefaultMaintenanceEvery).
	Every time.Duration
	// DCRUnusedFor deletes DCR clients unused (LastUsedAt, else CreatedAt)
	// for longer than this; 0 keeps them.
	DCRUnusedFor time.Duration
	// AuditRetention deletes audit events older than this (0: the default,
	// negative: keep them all).
	AuditRetention time.Duration
	// MaxClients bounds the clients deleted per round (0: the default).
	MaxClients int
	Now        func() time.Time
	Logger     *slog.Logger
}

// MaintenanceResult counts what a round removed.
type MaintenanceResult struct {
	Expired        int // records removed by DeleteExpired
	ClientsDeleted int
	GrantsRevoked  int
}

// RunMaintenance runs a maintenance round (Maintain) now and then every
// cfg.Every until ctx ends. Each round is bounded in time; it logs counts
// only.
func RunMaintenance(ctx context.Context, st MaintenanceStore, cfg MaintenanceConfig) {
	every := cfg.Every
	if every <= 0 {
		every = DefaultMaintenanceEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		round, cancel := context.WithTimeout(ctx, maintenanceRoundTimeout)
		res, err := Maintain(round, st, cfg)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			cfg.logger().Warn("authserver: maintenance round failed", "error", err,
				"expired_records", res.Expired, "clients_deleted", res.ClientsDeleted)
		case res.Expired+res.ClientsDeleted > 0:
			cfg.logger().Info("authserver: maintenance", "expired_records", res.Expired,
				"clients_deleted", res.ClientsDeleted, "grants_revoked", res.GrantsRevoked)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c MaintenanceConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// MaintenanceStore is what a round needs.
type MaintenanceStore interface {
	storage.Maintenance
	storage.Clients
	storage.Grants
	storage.Consents
	storage.Audit
}

// Maintain is one maintenance round: expired codes, grants, sessions,
// tickets and consents go; audit events older than cfg.AuditRetention go
// (0: DefaultAuditRetention; negative: kept); DCR clients unused
// (LastUsedAt, else CreatedAt) for longer than cfg.DCRUnusedFor (when > 0)
// are deleted with their grants and consents, at most cfg.MaxClients per
// round, each recorded as "client.expired".
func Maintain(ctx context.Context, st MaintenanceStore, cfg MaintenanceConfig) (MaintenanceResult, error) {
	var res MaintenanceResult
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	retention := cfg.AuditRetention
	if retention == 0 {
		retention = DefaultAuditRetention
	}
	var auditBefore time.Time
	if retention > 0 {
		auditBefore = now().Add(-retention)
	}
	n, err := st.DeleteExpired(ctx, now(), auditBefore)
	res.Expired = n
	if err != nil {
		return res, fmt.Errorf("authserver: maintenance: delete expired: %w", err)
	}
	if cfg.DCRUnusedFor <= 0 {
		return res, nil
	}
	limit := cfg.MaxClients
	if limit <= 0 {
		limit = maxExpiredClientsPerRound
	}
	clients, err := st.ListClients(ctx)
	if err != nil {
		return res, fmt.Errorf("authserver: maintenance: list clients: %w", err)
	}
	var errs []error
	for _, c := range clients {
		if res.ClientsDeleted >= limit || ctx.Err() != nil {
			break
		}
		if !dcrStale(c, now(), cfg.DCRUnusedFor) {
			continue
		}
		// Re-read: the client may have been used since the list.
		c, err := st.GetClient(ctx, c.ID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !dcrStale(c, now(), cfg.DCRUnusedFor) {
			continue
		}
		g, err := expireClient(ctx, st, c, now())
		res.GrantsRevoked += g
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.ClientsDeleted++
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("authserver: maintenance: expiring clients (%d failed): %w", len(errs), errs[0])
	}
	return res, nil
}

// dcrStale reports whether c is a DCR client unused for longer than d.
func dcrStale(c storage.Client, now time.Time, d time.Duration) bool {
	if c.Kind != storage.ClientDCR {
		return false
	}
	last := c.LastUsedAt
	if last.IsZero() {
		last = c.CreatedAt
	}
	return !last.IsZero() && now.Sub(last) > d
}

// expireClient revokes a client's grants, forgets its consents, deletes it
// and records "client.expired". Grants go first: a failure leaves the
// client in place for the next round rather than grants without a client.
func expireClient(ctx context.Context, st MaintenanceStore, c storage.Client, now time.Time) (int, error) {
	n, err := st.RevokeClientGrants(ctx, c.ID, "client_expired", now)
	if err != nil {
		return 0, fmt.Errorf("revoke grants of %s: %w", c.ID, err)
	}
	if _, err := st.DeleteClientConsents(ctx, c.ID); err != nil {
		return n, fmt.Errorf("delete consents of %s: %w", c.ID, err)
	}
	if err := st.DeleteClient(ctx, c.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return n, fmt.Errorf("delete client %s: %w", c.ID, err)
	}
	last := c.LastUsedAt
	if last.IsZero() {
		last = c.CreatedAt
	}
	ev := storage.AuditEvent{Time: now, Type: audit.ClientExpired, Outcome: "success", ClientID: c.ID,
		Detail: map[string]string{"kind": string(c.Kind), "unused_since": last.UTC().Format(time.RFC3339), "grants": fmt.Sprint(n)}}
	if err := st.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		return n, fmt.Errorf("audit expiry of %s: %w", c.ID, err)
	}
	return n, nil
}
