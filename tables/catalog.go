package tables

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/hadoop"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // the s3:// FileIO
	"github.com/apache/iceberg-go/table"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// catalogName is the Iceberg catalog's name: the SQL catalog keys its rows
// by it (catalog_name), and engines are told to mount it under this name.
const catalogName = "tierd"

// rootURI is the cold store's root as a location, without a trailing
// slash: s3://bucket/prefix, or for a file store the plain absolute path.
// Not a file:// URI: readers percent-decode those (iceberg-go's LocalFS
// does), and object keys may hold a literal '%' (stream names encoded in
// keys); a plain path is taken literally by iceberg-go, Hadoop's Path and
// DuckDB alike. S3 locations are never decoded.
func rootURI(cfg objstore.Config) string {
	if cfg.Scheme == "file" {
		return cfg.Path
	}
	s := "s3://" + cfg.Bucket
	if cfg.Prefix != "" {
		s += "/" + cfg.Prefix
	}
	return s
}

// ioProps are iceberg-go's FileIO properties for the store: the endpoint
// (path-style addressing follows from it, as MinIO needs) and region.
// Credentials come from the environment like objstore's, unless Options
// names them.
func ioProps(cfg objstore.Config, o Options) map[string]string {
	props := map[string]string{}
	if cfg.Scheme != "s3" {
		return props
	}
	props[icebergio.S3Region] = cfg.Region
	if cfg.Endpoint != "" {
		props[icebergio.S3EndpointURL] = cfg.Endpoint
	}
	if o.AccessKey != "" || o.SecretKey != "" {
		props[icebergio.S3AccessKeyID] = o.AccessKey
		props[icebergio.S3SecretAccessKey] = o.SecretKey
	}
	return props
}

// openCatalog opens the SQL catalog over PostgreSQL when dsn is set, else
// the Hadoop catalog rooted at warehouse.
//
// The Hadoop catalog commits by renaming a claimed metadata file, which is
// atomic on a local file system only; on S3 iceberg-go asks for
// allow-unsafe-commits. That is sound here because a bucket without a
// PostgreSQL catalog has exactly one tierd writing to it (single-node mode)
// and a Publisher serializes its commits per table. Several writers need the
// SQL catalog.
func openCatalog(ctx context.Context, warehouse, dsn string, ioprops map[string]string) (catalog.Catalog, func() error, error) {
	props := iceberg.Properties{"warehouse": warehouse}
	for k, v := range ioprops {
		props[k] = v
	}
	if dsn == "" {
		props["allow-unsafe-commits"] = "true"
		cat, err := hadoop.NewCatalog(catalogName, warehouse, props)
		if err != nil {
			return nil, nil, fmt.Errorf("tables: file catalog at %s: %w", warehouse, err)
		}
		return cat, cat.Close, nil
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("tables: catalog database: %w", err)
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("tables: catalog database: %w", err)
	}
	cat, err := sqlcat.NewCatalog(catalogName, db, sqlcat.Postgres, props)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("tables: sql catalog: %w", err)
	}
	return cat, func() error { return errors.Join(cat.Close(), db.Close()) }, nil
}

// ensureNamespace creates the namespace unless it exists. Two writers
// creating it at once: the loser may see a constraint error rather than
// ErrNamespaceAlreadyExists, so existence is asked again before failing.
func (p *Publisher) ensureNamespace(ctx context.Context) error {
	ns := table.Identifier{p.opts.Namespace}
	err := p.cat.CreateNamespace(ctx, ns, nil)
	if err == nil || errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return nil
	}
	if ok, cerr := p.cat.CheckNamespaceExists(ctx, ns); cerr == nil && ok {
		return nil
	}
	return fmt.Errorf("%w: create namespace %s: %w", errCommit, p.opts.Namespace, err)
}

// validName checks a stream or namespace name: a stream name is always a
// safe path component, which both catalogs need.
func validName(name string) error {
	if err := tiers.ValidateStreamName(name); err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	return nil
}
