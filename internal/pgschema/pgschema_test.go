package pgschema_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/internal/pgschema"
	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T) (*pgxpool.Pool, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pg := testenv.StartPostgres(t)
	pool, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, ctx
}

// TestMigrateFromEmptyAndAgain: a fresh database reaches Latest; a second
// run (a second node starting) changes nothing.
func TestMigrateFromEmptyAndAgain(t *testing.T) {
	pool, ctx := open(t)
	before, err := pgschema.Migrate(ctx, pool)
	if err != nil || before != 0 {
		t.Fatalf("first Migrate: before=%d err=%v", before, err)
	}
	v, err := pgschema.Version(ctx, pool)
	if err != nil || v != pgschema.Latest() {
		t.Fatalf("Version after Migrate = %d, %v; want %d", v, err, pgschema.Latest())
	}
	before, err = pgschema.Migrate(ctx, pool)
	if err != nil || before != pgschema.Latest() {
		t.Fatalf("second Migrate: before=%d err=%v", before, err)
	}
}

// TestConcurrentNodesMigrateOnce: nodes starting together serialise on the
// advisory lock; none fails on a half-created schema.
func TestConcurrentNodesMigrateOnce(t *testing.T) {
	pool, ctx := open(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := pgschema.Migrate(ctx, pool); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM tierd_schema").Scan(&n); err != nil || n != pgschema.Latest() {
		t.Fatalf("tierd_schema rows = %d, %v; want %d", n, err, pgschema.Latest())
	}
}

// TestRefusesNewerSchema: a database a newer tierd migrated is refused,
// and left as it was.
func TestRefusesNewerSchema(t *testing.T) {
	pool, ctx := open(t)
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	newer := pgschema.Latest() + 1
	if _, err := pool.Exec(ctx, "INSERT INTO tierd_schema (version, name) VALUES ($1, 'from_the_future')", newer); err != nil {
		t.Fatal(err)
	}
	_, err := pgschema.Migrate(ctx, pool)
	if !errors.Is(err, pgschema.ErrSchemaNewer) {
		t.Fatalf("Migrate on a newer schema: %v; want ErrSchemaNewer", err)
	}
	if v, _ := pgschema.Version(ctx, pool); v != newer {
		t.Fatalf("version moved to %d", v)
	}
}
