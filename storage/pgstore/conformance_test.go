package pgstore

import (
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/storagetest"
)

// TestConformance runs the suite every backend passes, concurrency cases
// included, each case on a fresh schema of its own.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return openTest(t) })
}
