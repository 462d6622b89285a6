package policy

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// ClusterConfig is the cluster: section. Setting Catalog turns on cluster
// mode: the node keeps nothing acknowledged on its own disk (journal
// objects in cold.store, offsets and producers in PostgreSQL), and
// data_dir is only a cache. Without it every other field is ignored.
type ClusterConfig struct {
	// Catalog is the PostgreSQL database the nodes share:
	// postgres://USER[:PASSWORD]@HOST:PORT/DB?sslmode=…; the password may
	// come from $PGPASSWORD instead. It is a DSN so that no formatting of
	// it, a log line or an error, shows the password.
	Catalog DSN
	// NodeID names this node among the live ones; a node restarted with
	// the same id takes over at once (a newer epoch fences the old
	// process). Default: the host name.
	NodeID string
	// FlushInterval is how long a batch may wait for others before the
	// node writes them as one journal object: a write's latency floor,
	// traded against object PUTs per second.
	FlushInterval time.Duration
	// FlushBytes writes the journal object sooner, once this many bytes
	// wait.
	FlushBytes int64
	// GCDelay is how long a journal object nothing references (released
	// by compaction, or never committed after a crash) stays before it is
	// deleted. It must outlast the longest journal PUT and commit, so that
	// GC never deletes an object a commit in flight is about to reference,
	// and let readers that located a range just before finish.
	GCDelay time.Duration
	// CacheBytes bounds the disk cache of journal blocks under data_dir.
	CacheBytes int64
	// CompactionLease is how long a compaction job's owner holds it
	// without renewing; a dead node's job is taken over after it.
	CompactionLease time.Duration
}

// The cluster: section's defaults and bounds.
const (
	DefaultClusterFlushInterval   = 50 * time.Millisecond
	DefaultClusterFlushBytes      = 8 * MiB
	DefaultClusterGCDelay         = 10 * time.Minute
	DefaultClusterCacheBytes      = 1 * GiB
	DefaultClusterCompactionLease = 30 * time.Second

	// A journal object per flush_interval: over 10s is no longer a
	// write path anyone waits on.
	maxFlushInterval = 10 * time.Second
	// Below 64KiB an object per batch costs a PUT per batch; above 256MiB
	// one object holds more memory than a node should buffer.
	minFlushBytes = 64 * KiB
	maxFlushBytes = 256 * MiB
	minGCDelay    = time.Second
	minLease      = time.Second
	maxNodeIDLen  = 64
)

// Enabled reports whether the node runs in cluster mode (cluster.catalog
// is set).
func (c ClusterConfig) Enabled() bool { return c.Catalog != "" }

// DefaultNodeID is the node id a configuration without cluster.node_id
// gets: the host name, or "" when the system does not say (validation
// then asks for node_id in cluster mode).
func DefaultNodeID() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

// CheckNodeID accepts 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-': a node
// id goes into object keys (_journal/<node_id>/…) and log lines, so it
// must need no escaping anywhere.
func CheckNodeID(id string) error {
	if id == "" || len(id) > maxNodeIDLen {
		return fmt.Errorf("%q must be 1 to %d characters", id, maxNodeIDLen)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("%q has %q: a node id is letters, digits, '.', '_' and '-'", id, r)
		}
	}
	return nil
}

// DSN is a PostgreSQL connection URL. Every way of printing it (%v, %s,
// %#v, slog, JSON) gives Redacted, so the password it may hold reaches no
// log line or error; string(d) is the DSN itself, for connecting.
type DSN string

// redactedPassword replaces a password in Redacted's output.
const redactedPassword = "xxxxx"

// Redacted is the DSN without its password (in the user part or a
// password= parameter, either replaced by "xxxxx"); a DSN that does not
// parse as a URL is shown as its scheme only, since where the password is
// in it cannot be known.
func (d DSN) Redacted() string {
	if d == "" {
		return ""
	}
	u, err := url.Parse(string(d))
	if err != nil {
		scheme, _, ok := strings.Cut(string(d), "://")
		if !ok || strings.ContainsAny(scheme, ":@/?") {
			return "(unparsable DSN)"
		}
		return scheme + "://(unparsable DSN)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redactedPassword)
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// String is Redacted.
func (d DSN) String() string { return d.Redacted() }

// GoString is Redacted too, quoted: %#v of a Config must not show it.
func (d DSN) GoString() string { return fmt.Sprintf("%q", d.Redacted()) }

// MarshalText is Redacted, for encoders (slog's JSON handler,
// encoding/json) that would otherwise write the string itself.
func (d DSN) MarshalText() ([]byte, error) { return []byte(d.Redacted()), nil }

// sslModes are libpq's sslmode values, which pgx accepts.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// checkDSN accepts postgres:// and postgresql:// URLs naming a host (in
// the authority or a host= parameter) with a known sslmode, if any.
// Errors show the DSN redacted only.
func checkDSN(d DSN) error {
	u, err := url.Parse(string(d))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error's text quotes the whole URL, password too
		}
		return fmt.Errorf("%s is not a URL: %v", d.Redacted(), err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("%s: the scheme must be postgres:// or postgresql://", d.Redacted())
	}
	q := u.Query()
	if u.Hostname() == "" && q.Get("host") == "" {
		return fmt.Errorf("%s names no host (postgres://USER@HOST:PORT/DB)", d.Redacted())
	}
	if q.Has("sslmode") && !slices.Contains(sslModes, q.Get("sslmode")) {
		return fmt.Errorf("%s: sslmode=%q is not one of %s", d.Redacted(), q.Get("sslmode"), strings.Join(sslModes, ", "))
	}
	return nil
}

// clusterFields is the cluster: section.
func clusterFields(c *ClusterConfig) []field {
	return []field{
		{"catalog", func(d *decoder, n ast.Node, p string) {
			var s string
			d.str(n, p, &s)
			c.Catalog = DSN(s)
		}},
		{"node_id", func(d *decoder, n ast.Node, p string) { d.str(n, p, &c.NodeID) }},
		{"flush_interval", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.FlushInterval) }},
		{"flush_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.FlushBytes) }},
		{"gc_delay", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.GCDelay) }},
		{"cache_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.CacheBytes) }},
		{"compaction_lease", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.CompactionLease) }},
	}
}

// checkCluster applies the rules of the cluster: section. The bounds hold
// in either mode (an example that sets them stays valid when the catalog
// is commented in); the node id and the shared store only matter, and are
// checked, in cluster mode.
func (v *validator) checkCluster(c *Config) {
	cl := c.Cluster
	if v.ok("cluster.flush_interval") && (cl.FlushInterval <= 0 || cl.FlushInterval > maxFlushInterval) {
		v.errorf("cluster.flush_interval", "%s is not above 0 and at most %s: acknowledgements wait for it", FormatDuration(cl.FlushInterval), FormatDuration(maxFlushInterval))
	}
	if v.ok("cluster.flush_bytes") && (cl.FlushBytes < minFlushBytes || cl.FlushBytes > maxFlushBytes) {
		v.errorf("cluster.flush_bytes", "%s is not from %s to %s: smaller costs a PUT per batch, larger holds too much memory per object", FormatSize(cl.FlushBytes), FormatSize(minFlushBytes), FormatSize(maxFlushBytes))
	}
	if v.ok("cluster.gc_delay") && cl.GCDelay < minGCDelay {
		v.errorf("cluster.gc_delay", "%s must be at least %s: an object a commit in flight references must outlive it", FormatDuration(cl.GCDelay), FormatDuration(minGCDelay))
	}
	if v.ok("cluster.cache_bytes") && cl.CacheBytes <= 0 {
		v.errorf("cluster.cache_bytes", "%s must be positive", FormatSize(cl.CacheBytes))
	}
	if v.ok("cluster.compaction_lease") && cl.CompactionLease < minLease {
		v.errorf("cluster.compaction_lease", "%s must be at least %s", FormatDuration(cl.CompactionLease), FormatDuration(minLease))
	}
	if !v.ok("cluster.catalog") || !cl.Enabled() {
		return
	}
	if err := checkDSN(cl.Catalog); err != nil {
		v.errorf("cluster.catalog", "%v", err)
	}
	if v.ok("cluster.node_id") {
		switch err := CheckNodeID(cl.NodeID); {
		case err == nil:
		case v.set("cluster.node_id") || v.pos == nil:
			v.errorf("cluster.node_id", "%v", err)
		case cl.NodeID == "":
			v.errorf("cluster.catalog", "cluster mode needs a node id, and the host name is unknown: set cluster.node_id")
		default:
			v.errorf("cluster.catalog", "cluster mode needs a node id, and the host name, its default, is not one (%v): set cluster.node_id", err)
		}
	}
	if v.ok("cold.store") {
		v.checkSharedStore(c)
	}
}

// checkSharedStore refuses a cold store only this node sees: in cluster
// mode every byte (journal objects, segments) lives there, and every node
// reads what any other wrote.
func (v *validator) checkSharedStore(c *Config) {
	const want = "cluster mode needs a store every node shares, s3://BUCKET/PREFIX or file:///path/all/nodes/mount"
	switch {
	case strings.HasPrefix(c.Cold.Store, "s3://"), strings.HasPrefix(c.Cold.Store, "file://"):
		return
	case c.Cold.Store == StoreNone:
		v.errorf("cold.store", "is none: %s (every acknowledged record is written there)", want)
	case c.Cold.Store == "" && v.set("cold.store"):
		v.errorf("cold.store", "is empty, the file store in <data_dir>/cold that only this node sees: %s", want)
	case c.Cold.Store == "":
		v.errorf("cluster.catalog", "cold.store is not set, so it is the file store in <data_dir>/cold that only this node sees: %s", want)
	}
	// Any other value is not a store URL at all, which check reports.
}

// clusterWarnings flags cluster: settings in a file without
// cluster.catalog: local mode ignores them, which is likely not what the
// operator meant.
func (v *validator) clusterWarnings(c *Config) {
	if c.Cluster.Enabled() {
		return
	}
	for _, f := range []string{"node_id", "flush_interval", "flush_bytes", "gc_delay", "cache_bytes", "compaction_lease"} {
		if v.set("cluster." + f) {
			v.errorf("cluster."+f, "is ignored: cluster.catalog is not set, so the node runs in local mode")
		}
	}
}
