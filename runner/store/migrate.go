package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migrations are files migrations/NNNN_name.sql, shared by both dialects,
// or NNNN_name.sqlite.sql plus NNNN_name.postgres.sql where the SQL differs.
// A version is applied once, in order, inside one transaction with the
// schema_migrations bookkeeping. Never edit an applied file: add a new one.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the migrations for dialect d, ordered by version.
func migrations(d Dialect) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]migration{}
	specific := map[int]bool{}
	for _, e := range entries {
		file := e.Name()
		base := strings.TrimSuffix(file, ".sql")
		own := false
		switch {
		case strings.HasSuffix(base, ".sqlite"), strings.HasSuffix(base, ".postgres"):
			dot := strings.LastIndexByte(base, '.')
			if Dialect(base[dot+1:]) != d {
				continue
			}
			base, own = base[:dot], true
		}
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", file)
		}
		if prev, dup := byVersion[v]; dup && (specific[v] == own) {
			return nil, fmt.Errorf("migration %s: version %d also used by %s", file, v, prev.name)
		}
		if specific[v] && !own {
			continue // the dialect's own file wins over a shared one
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+file)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", file, err)
		}
		byVersion[v] = migration{version: v, name: name, sql: string(body)}
		specific[v] = own
	}
	out := make([]migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrationLockClass is the first key of the PostgreSQL advisory lock that
// serializes migrations; the second is a hash of the current schema, so
// databases or schemas migrating side by side do not wait for each other.
const migrationLockClass = 0x52554e // "RUN"

func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations(s.dialect)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLockClass); err != nil {
				return fmt.Errorf("migrate: advisory lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    BIGINT PRIMARY KEY,
			name       TEXT   NOT NULL,
			applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		applied := map[int]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("migrate: read schema_migrations: %w", err)
			}
			applied[v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migrate: apply %04d_%s (%s): %w", m.version, m.name, s.dialect, err)
			}
			if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, s.now().UnixMicro()); err != nil {
				return fmt.Errorf("migrate: record %04d_%s: %w", m.version, m.name, err)
			}
			s.log.Info("applied migration", "version", m.version, "name", m.name, "dialect", string(s.dialect))
		}
		return nil
	})
}
