// Package pgschema creates and migrates tierd's PostgreSQL schema, the
// shared catalog of cluster mode. The migrations are SQL files embedded in
// the binary (migrations/NNNN_name.sql, applied in order, each in its own
// transaction); the table tierd_schema records which ran. Several nodes may
// start at once: an advisory lock makes one migrate while the others wait.
// A node refuses a database whose schema is newer than the newest
// migration it knows (ErrSchemaNewer): an older binary must not write
// tables whose meaning changed under it.
package pgschema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var files embed.FS

// ErrSchemaNewer refuses a database migrated by a newer tierd.
var ErrSchemaNewer = errors.New("pgschema: the database's schema is newer than this tierd knows")

// lockKey is the advisory lock that serialises migrations across nodes
// ("tierd" in ASCII).
const lockKey = 0x7469657264

// Migration is one embedded SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order. Versions
// are dense from 1: a gap or a duplicate is a build mistake and panics.
func Migrations() []Migration {
	ents, err := fs.ReadDir(files, "migrations")
	if err != nil {
		panic(err)
	}
	var ms []Migration
	for _, e := range ents {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(rest, ".sql") {
			panic("pgschema: migration file " + name + " is not NNNN_name.sql")
		}
		b, err := files.ReadFile(path.Join("migrations", name))
		if err != nil {
			panic(err)
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			panic(fmt.Sprintf("pgschema: migration versions must be dense from 1; found %d at position %d", m.Version, i+1))
		}
	}
	return ms
}

// Latest is the newest schema version this binary knows.
func Latest() int { return len(Migrations()) }

// Migrate brings the database to Latest, applying each missing migration
// in its own transaction, and returns the version it found before. A
// database newer than Latest wraps ErrSchemaNewer and is left alone.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (before int, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgschema: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return 0, fmt.Errorf("pgschema: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS tierd_schema (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("pgschema: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM tierd_schema").Scan(&before); err != nil {
		return 0, fmt.Errorf("pgschema: %w", err)
	}
	ms := Migrations()
	if before > len(ms) {
		return before, fmt.Errorf("%w: the database is at version %d, this tierd knows up to %d; upgrade tierd", ErrSchemaNewer, before, len(ms))
	}
	for _, m := range ms[before:] {
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO tierd_schema (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return before, fmt.Errorf("pgschema: migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return before, nil
}

// Version returns the database's schema version (0 when never migrated).
func Version(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('tierd_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("pgschema: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM tierd_schema").Scan(&v); err != nil {
		return 0, fmt.Errorf("pgschema: %w", err)
	}
	return v, nil
}
