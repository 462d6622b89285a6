package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tierd/tierd/testenv"
)

// TestPostgresDatabasePerTest: each test gets its own empty database on a
// real server, and a dedicated server survives a restart with its data.
func TestPostgresDatabasePerTest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := testenv.StartPostgres(t), testenv.StartPostgres(t)
	if a.Database == b.Database {
		t.Fatalf("two tests share database %s", a.Database)
	}
	ca, err := pgx.Connect(ctx, a.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the second database sees the first's table: n=%d err=%v", n, err)
	}
}

func TestDedicatedPostgresRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testenv.StartDedicatedPostgres(t)
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	pg.Stop()
	if _, err := pgx.Connect(ctx, pg.DSN); err == nil {
		t.Fatal("a stopped server accepted a connection")
	}
	pg.Start()
	c, err = pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v int
	if err := c.QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 7 {
		t.Fatalf("after a restart: v=%d err=%v", v, err)
	}
}
