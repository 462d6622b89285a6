package pgcatalog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/catalog/catalogtest"
	"github.com/tierd/tierd/catalog/pgcatalog"
	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newPool connects to dsn for the rest of t.
func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// openCatalog opens a Catalog on a pool of its own to dsn.
func openCatalog(t *testing.T, dsn string) (*pgcatalog.Catalog, *pgxpool.Pool) {
	t.Helper()
	return openCatalogB(t, dsn)
}

// openCatalogB is openCatalog for a test or a benchmark; the Catalog is
// closed when tb ends.
func openCatalogB(t testing.TB, dsn string) (*pgcatalog.Catalog, *pgxpool.Pool) {
	t.Helper()
	pool := newPool(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgcatalog.Open(ctx, pool)
	if err != nil {
		t.Fatalf("pgcatalog.Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, pool
}

// pgFactory opens each Store in a database of its own; Reopen closes the
// Catalog and its pool and opens both again on the same database, as a
// restart of the node does.
func pgFactory() catalogtest.Factory {
	type opened struct {
		dsn  string
		pool *pgxpool.Pool
	}
	var stores sync.Map // catalog.Store -> opened
	open := func(t *testing.T, dsn string) catalog.Store {
		c, pool := openCatalog(t, dsn)
		stores.Store(c, opened{dsn, pool})
		return c
	}
	return catalogtest.Factory{
		Open: func(t *testing.T) catalog.Store { return open(t, testenv.StartPostgres(t).DSN) },
		Reopen: func(t *testing.T, s catalog.Store) catalog.Store {
			v, ok := stores.LoadAndDelete(s)
			if !ok {
				t.Fatalf("Reopen of a Store this factory did not open")
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			v.(opened).pool.Close()
			return open(t, v.(opened).dsn)
		},
	}
}

// TestConformance runs the catalog contract's suite against the
// PostgreSQL catalog.
func TestConformance(t *testing.T) {
	catalogtest.Run(t, pgFactory())
}
