package policy

import (
	"fmt"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// TablesConfig is the tables: section: the cold tier published as Apache
// Iceberg tables, one per stream (docs/analytics.md). Without a cold tier
// (cold.store: none) there is nothing to publish: Parse turns Enabled off,
// silently, and TablesEnabled says so for a Config built in code.
type TablesConfig struct {
	// Enabled publishes every stream's cold segments as an Iceberg table.
	Enabled bool
	// Namespace is the tables' Iceberg namespace: the table of stream s is
	// <Namespace>.<s>.
	Namespace string
	// CommitInterval is how long cold placements wait to be committed to
	// their table together: one snapshot covers all of a stream's
	// placements within it, trading table freshness for fewer snapshots
	// and metadata files.
	CommitInterval time.Duration
}

// The tables: section's defaults and bounds.
const (
	DefaultTablesNamespace      = "tierd"
	DefaultTablesCommitInterval = 10 * time.Second
	// A snapshot a second at most: Iceberg keeps a metadata file per
	// commit, and engines plan by reading them.
	minCommitInterval = time.Second
	maxNamespaceLen   = 128
)

// TablesEnabled reports whether the node publishes tables: tables.enabled
// and a cold tier to publish.
func (c Config) TablesEnabled() bool { return c.Tables.Enabled && c.HasColdStore() }

// tablesFields is the tables: section.
func tablesFields(t *TablesConfig) []field {
	return []field{
		{"enabled", func(d *decoder, n ast.Node, p string) { d.boolean(n, p, &t.Enabled) }},
		{"namespace", func(d *decoder, n ast.Node, p string) { d.str(n, p, &t.Namespace) }},
		{"commit_interval", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &t.CommitInterval) }},
	}
}

// checkTables applies the rules of the tables: section; they hold whether
// or not tables are enabled, so that turning them on never meets an error
// that was there all along.
func (v *validator) checkTables(c *Config) {
	t := c.Tables
	if v.ok("tables.namespace") {
		if err := checkNamespace(t.Namespace); err != nil {
			v.errorf("tables.namespace", "%v", err)
		}
	}
	if v.ok("tables.commit_interval") && t.CommitInterval < minCommitInterval {
		v.errorf("tables.commit_interval", "%s must be at least %s: every commit writes a snapshot and metadata file engines read", FormatDuration(t.CommitInterval), FormatDuration(minCommitInterval))
	}
}

// checkNamespace accepts [a-z_][a-z0-9_]*: a name Spark, Trino and DuckDB
// all take unquoted (Trino folds identifiers to lower case, so an upper-case
// namespace would be unreachable there), and a path segment of the
// warehouse with nothing to escape.
func checkNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(ns) > maxNamespaceLen {
		return fmt.Errorf("%q is longer than %d bytes", ns, maxNamespaceLen)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if c == '_' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return fmt.Errorf("%q is not a namespace: lower-case letters, digits and _, not starting with a digit (engines fold or quote anything else)", ns)
	}
	return nil
}
