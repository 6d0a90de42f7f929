package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotFound: no row with that key.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a row with that unique key exists already.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrConflict: the row's current state does not allow the change (e.g.
	// a transition out of a terminal status). Nothing was written.
	ErrConflict = errors.New("store: conflict with current state")
	// ErrStale: the caller's stage attempt is not the current one; another
	// attempt owns the stage now. Nothing was written.
	ErrStale = errors.New("store: stale attempt")
)

// Dialect names the SQL backend.
type Dialect string

// Dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Store is the database handle. Create it with Open and Close it when done.
type Store struct {
	dialect Dialect
	w       *sql.DB // writes and transactions; one connection on SQLite
	r       *sql.DB // reads; the same as w on PostgreSQL
	log     *slog.Logger
	sealer  Sealer // nil: secrets refused, repo credentials in the clear
	now     func() time.Time
	// stmts caches prepared statements of hot queries, keyed by handle
	// and query text (see prepared). database/sql re-prepares a Stmt on
	// each pooled connection once and keeps it; without the cache every
	// call prepares (SQLite: sqlite3_prepare_v2) and finalizes again.
	stmts sync.Map // stmtKey -> *sql.Stmt
}

type stmtKey struct {
	db *sql.DB
	q  string
}

// Option configures Open.
type Option func(*Store)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithClock sets the clock used for created/queued/started/finished times
// (default: time.Now). Tests use it for deterministic times.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open connects to the database named by dsn and migrates its schema.
//
//   - "postgres://..." or "postgresql://...": PostgreSQL (a pgx DSN; extra
//     query parameters such as search_path are passed to the server).
//   - "sqlite:///abs/path.db", "sqlite://rel/path.db" or a plain file path:
//     SQLite, created if missing, in WAL mode with foreign keys on.
//
// Migrations run idempotently at every Open; concurrent Opens of the same
// database are safe (PostgreSQL: advisory lock; SQLite: immediate
// transaction).
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	s := &Store{log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = Postgres
		s.w, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		// Idle connections are kept (as many as may be open): closing
		// them after a burst means reconnecting, and every PostgreSQL
		// connection pays TLS/SCRAM authentication again.
		s.w.SetMaxOpenConns(16)
		s.w.SetMaxIdleConns(16)
		s.r = s.w
	default:
		s.dialect = SQLite
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, fmt.Errorf("open sqlite: empty path in %q", dsn)
		}
		if strings.Contains(path, "?") {
			return nil, fmt.Errorf("open sqlite %q: options in the DSN are not supported", path)
		}
		if err := createPrivate(path); err != nil {
			return nil, err
		}
		const pragmas = "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
			"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		s.w, err = sql.Open("sqlite", path+pragmas)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		s.w.SetMaxOpenConns(1) // the single writer
		s.w.SetConnMaxIdleTime(0)
		s.r, err = sql.Open("sqlite", path+pragmas+"&_pragma=query_only(1)")
		if err != nil {
			s.w.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		s.r.SetMaxOpenConns(4)
		s.r.SetMaxIdleConns(4)
	}
	if err := s.ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect %s: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepareTx(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.sealer != nil {
		if n, err := s.Reseal(ctx); err != nil {
			s.Close()
			return nil, err
		} else if n > 0 {
			s.log.Info("sealed stored credentials", "count", n)
		}
	}
	return s, nil
}

// ping opens the first connection. On SQLite, switching a new database
// file to WAL needs an exclusive lock and SQLite answers SQLITE_BUSY at
// once, without waiting busy_timeout, when another process or Store is
// doing the same: retry that for a while.
func (s *Store) ping(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := s.w.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Dialect reports which backend the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database connections.
func (s *Store) Close() error {
	var errs []error
	s.stmts.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		s.stmts.Delete(k)
		return true
	})
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// rebind turns the ? placeholders of a query into PostgreSQL's $n. Queries
// in this package never contain a literal question mark.
func (s *Store) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// prepared returns the cached prepared statement of query q (with ?
// placeholders) on db, preparing it on first use. Use it for queries on
// hot paths; their text must be constant (no values spliced in), or the
// cache grows without bound.
func (s *Store) prepared(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	k := stmtKey{db, q}
	if st, ok := s.stmts.Load(k); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, s.rebind(q))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if prev, loaded := s.stmts.LoadOrStore(k, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs a single-row query through the statement cache.
func (s *Store) queryRow(ctx context.Context, db *sql.DB, q string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, db, q)
	if err != nil {
		// The error surfaces at Scan: run it unprepared.
		return db.QueryRowContext(ctx, s.rebind(q), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// exec runs a statement through the statement cache.
func (s *Store) exec(ctx context.Context, db *sql.DB, q string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, db, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// queryIn runs query q whose text depends on the number of its
// arguments (an IN list): through the statement cache for one argument
// (loading one run, the hot case), unprepared otherwise so that the
// cache stays small.
func (s *Store) queryIn(ctx context.Context, db *sql.DB, q string, args ...any) (*sql.Rows, error) {
	if len(args) == 1 {
		if st, err := s.prepared(ctx, db, q); err == nil {
			return st.QueryContext(ctx, args...)
		}
	}
	return db.QueryContext(ctx, s.rebind(q), args...)
}

// txStmt returns statement q bound to tx: the writer's cached statement
// when Open prepared it (txQueries), else one prepared on tx for this
// transaction only. (Preparing on s.w here would wait for a connection
// while tx holds SQLite's only writer connection.)
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(stmtKey{s.w, q}); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	st, err := tx.PrepareContext(ctx, s.rebind(q))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return st, nil
}

// txQueries are the statements run inside write transactions on hot
// paths; Open prepares them on the writer.
var txQueries = []string{
	qNextRunNumber, qInsertRun, qInsertStage, qInsertStep, qLinkDelivery,
}

func (s *Store) prepareTx(ctx context.Context) error {
	for _, q := range txQueries {
		if _, err := s.prepared(ctx, s.w, q); err != nil {
			return fmt.Errorf("prepare %.40q: %w", q, err)
		}
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tx runs fn in a write transaction, committing when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// ts converts a time to its column value: NULL for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromTS converts a column value back to a UTC time.
func fromTS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nullID converts an id to its column value: NULL for 0.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// page appends the newest-first cursor paging that list queries share:
// rows whose idCol is below before (when set), at most limit of them
// (default 50, capped at 1000).
func page(q string, args []any, idCol string, before int64, limit int) (string, []any) {
	if before > 0 {
		q += ` AND ` + idCol + ` < ?`
		args = append(args, before)
	}
	switch {
	case limit <= 0:
		limit = 50
	case limit > 1000:
		limit = 1000
	}
	return q + ` ORDER BY ` + idCol + ` DESC LIMIT ?`, append(args, limit)
}

// createPrivate creates the SQLite database file readable by its owner
// only, before SQLite does: SQLite creates it with the umask's mode
// (usually 0644), and gives its -wal and -shm files the mode of the
// database file. The database holds webhook secrets and token hashes.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return f.Close()
}
