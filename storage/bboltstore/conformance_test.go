package bboltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/mcpauth/caddy-mcpauth/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		s, err := bboltstore.Open(filepath.Join(t.TempDir(), "mcpauth.db"), bboltstore.Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}
