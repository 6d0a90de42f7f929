package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// forEachDSN runs fn once per backend with a fresh, empty database: SQLite
// in a temp dir, and PostgreSQL in a fresh schema of RUNNEL_TEST_POSTGRES
// when that is set (required when CI is set).
func forEachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, "sqlite://"+filepath.Join(t.TempDir(), "runnel.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("RUNNEL_TEST_POSTGRES")
		if base == "" {
			if os.Getenv("CI") != "" {
				t.Fatal("CI is set but RUNNEL_TEST_POSTGRES is empty: PostgreSQL tests must run in CI")
			}
			t.Skip("RUNNEL_TEST_POSTGRES not set")
		}
		fn(t, freshSchema(t, base))
	})
}

// freshSchema creates a schema with a random name, drops it when the test
// ends, and returns base with search_path set to it.
func freshSchema(t *testing.T, base string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// forEachBackend runs fn once per backend with an open, migrated Store.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	forEachDSN(t, func(t *testing.T, dsn string) {
		s := openTest(t, dsn)
		fn(t, s)
	})
}

func openTest(t *testing.T, dsn string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(discardLogger())}, opts...)
	s, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
