package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secret is the password every DSN of these tests carries, so that any
// error or rendering can be searched for it.
const secret = "s3cretPW"

const sharedStore = "cold: {store: \"s3://tierd/c?endpoint=http://127.0.0.1:9000&region=us-east-1\"}\n"

func TestParseCluster(t *testing.T) {
	c, err := Parse("tierd.yaml", []byte(sharedStore+"cluster:\n  catalog: postgres://tierd:"+secret+"@127.0.0.1:5432/tierd?sslmode=disable\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default().Cluster
	want.Catalog = DSN("postgres://tierd:" + secret + "@127.0.0.1:5432/tierd?sslmode=disable")
	if c.Cluster != want || !c.Cluster.Enabled() {
		t.Fatalf("cluster = %+v, want the defaults and the catalog %+v", c.Cluster, want)
	}
	if c.Cluster.NodeID == "" || c.Cluster.NodeID != DefaultNodeID() {
		t.Fatalf("node_id = %q, want the host name %q", c.Cluster.NodeID, DefaultNodeID())
	}
	if Default().Cluster.Enabled() {
		t.Fatal("the default configuration is in cluster mode")
	}
	for _, in := range []string{
		"cluster: {catalog: 'postgresql://u@db.example:5432/t', node_id: a.B_c-9}\n",
		"cluster: {catalog: 'postgres:///t?host=/var/run/postgresql', node_id: " + strings.Repeat("x", 64) + "}\n",
		"cluster: {catalog: 'postgres://u@db/t?sslmode=verify-full&password=" + secret + "'}\n",
	} {
		if _, err := Parse("tierd.yaml", []byte(sharedStore+in)); err != nil {
			t.Errorf("Parse(%q) = %v", in, err)
		}
	}
	c, err = Parse("tierd.yaml", []byte("cold: {store: 'file:///mnt/shared/tierd'}\ncluster: {catalog: 'postgres://u@db/t', node_id: n1}\n"))
	if err != nil {
		t.Fatalf("a file:// store shared by path: %v", err)
	}
	if c.Cluster.NodeID != "n1" {
		t.Fatalf("node_id = %q", c.Cluster.NodeID)
	}
	// Local mode ignores the section's node id: a host name that is no
	// node id must not stop a node that is not in a cluster.
	lc := Default()
	lc.Cluster.NodeID = "not a node id"
	if err := lc.Validate(); err != nil {
		t.Fatalf("local mode with a bad node id: %v", err)
	}
}

func TestParseClusterErrors(t *testing.T) {
	dsn := "postgres://tierd:" + secret + "@127.0.0.1:5432/tierd"
	cat := "cluster:\n  catalog: '" + dsn + "'\n"
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"mysql", sharedStore + "cluster:\n  catalog: 'mysql://tierd:" + secret + "@db/t'\n", []loc{{3, "cluster.catalog", "the scheme must be postgres:// or postgresql://"}}},
		{"no host", sharedStore + "cluster:\n  catalog: 'postgres://:" + secret + "@/t'\n", []loc{{3, "cluster.catalog", "names no host"}}},
		{"bad port", sharedStore + "cluster:\n  catalog: 'postgres://tierd:" + secret + "@db:port/t'\n", []loc{{3, "cluster.catalog", "is not a URL"}}},
		{"bad sslmode", sharedStore + "cluster:\n  catalog: '" + dsn + "?sslmode=maybe'\n", []loc{{3, "cluster.catalog", `sslmode="maybe" is not one of disable`}}},
		{"catalog not a string", sharedStore + "cluster:\n  catalog: [a]\n", []loc{{3, "cluster.catalog", "must be a string"}}},
		{"node id characters", sharedStore + cat + "  node_id: 'node 1'\n", []loc{{4, "cluster.node_id", `has ' '`}}},
		{"node id too long", sharedStore + cat + "  node_id: " + strings.Repeat("n", 65) + "\n", []loc{{4, "cluster.node_id", "must be 1 to 64 characters"}}},
		{"node id empty", sharedStore + cat + "  node_id: ''\n", []loc{{4, "cluster.node_id", "must be 1 to 64 characters"}}},
		{"flush interval zero", sharedStore + cat + "  flush_interval: 0s\n", []loc{{4, "cluster.flush_interval", "is not above 0 and at most 10s"}}},
		{"flush interval long", sharedStore + cat + "  flush_interval: 11s\n", []loc{{4, "cluster.flush_interval", "11s is not above 0"}}},
		{"flush bytes small", sharedStore + cat + "  flush_bytes: 1KiB\n", []loc{{4, "cluster.flush_bytes", "1KiB is not from 64KiB to 256MiB"}}},
		{"flush bytes large", sharedStore + cat + "  flush_bytes: 512MiB\n", []loc{{4, "cluster.flush_bytes", "512MiB is not from 64KiB to 256MiB"}}},
		{"gc delay short", sharedStore + cat + "  gc_delay: 500ms\n", []loc{{4, "cluster.gc_delay", "must be at least 1s"}}},
		{"cache zero", sharedStore + cat + "  cache_bytes: 0\n", []loc{{4, "cluster.cache_bytes", "must be positive"}}},
		{"lease short", sharedStore + cat + "  compaction_lease: 0s\n", []loc{{4, "cluster.compaction_lease", "must be at least 1s"}}},
		{"unknown field", sharedStore + cat + "  nodes: 3\n", []loc{{4, "cluster.nodes", "unknown field (want one of catalog, node_id, flush_interval, flush_bytes, gc_delay, cache_bytes, compaction_lease)"}}},
		{"store unset", "listen: 127.0.0.1:7070\n" + cat, []loc{{3, "cluster.catalog", "cold.store is not set, so it is the file store in <data_dir>/cold that only this node sees: cluster mode needs a store every node shares"}}},
		{"store none", "cold: {store: none}\n" + cat, []loc{{1, "cold.store", "is none: cluster mode needs a store every node shares"}}},
		{"store empty", "cold:\n  store: ''\n" + cat, []loc{{2, "cold.store", "is empty, the file store in <data_dir>/cold that only this node sees"}}},
		{"every mistake", "cold: {store: none}\ncluster:\n  catalog: 'postgresql://u:" + secret + "@db/t?sslmode=no'\n  node_id: a/b\n  gc_delay: 0s\n", []loc{
			{1, "cold.store", "is none"},
			{3, "cluster.catalog", "sslmode"},
			{4, "cluster.node_id", "has '/'"},
			{5, "cluster.gc_delay", "must be at least 1s"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("tierd.yaml", []byte(tc.in))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse = %+v, %v; want a *ValidationError", got, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the DSN's password:\n%v", err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.File != "tierd.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
		})
	}
}

// TestClusterValidateInCode: a Config built in code gets the same rules,
// without positions; a node id that is no id is reported on node_id.
func TestClusterValidateInCode(t *testing.T) {
	c := Default()
	c.Cold.Store = "s3://b/p"
	c.Cluster.Catalog = DSN("postgres://u:" + secret + "@db/t")
	c.Cluster.NodeID = "bad id"
	c.Cluster.FlushBytes = 1
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 || ve.Errors[0].Field != "cluster.flush_bytes" || ve.Errors[1].Field != "cluster.node_id" {
		t.Fatalf("Validate = %v, want cluster.flush_bytes and cluster.node_id", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error shows the password: %v", err)
	}
	c = Default()
	c.Cluster.Catalog = "postgres://u@db/t"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "cluster.catalog: cold.store is not set") {
		t.Fatalf("Validate without a shared store = %v", err)
	}
}

func TestCheckNodeID(t *testing.T) {
	for _, id := range []string{"a", "node-1", "n.example.com", "N_2", strings.Repeat("z", 64)} {
		if err := CheckNodeID(id); err != nil {
			t.Errorf("CheckNodeID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("z", 65), "a b", "a/b", "é", "a:b", "a\n"} {
		if err := CheckNodeID(id); err == nil {
			t.Errorf("CheckNodeID(%q) accepted it", id)
		}
	}
}

// TestDSNRedacted: the password is out of every way a DSN is printed: the
// user part, a password= parameter, a DSN that does not parse, and every
// formatting of a Config that holds it, slog's included.
func TestDSNRedacted(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"postgres://tierd:" + secret + "@db:5432/tierd?sslmode=require", "postgres://tierd:xxxxx@db:5432/tierd?sslmode=require"},
		{"postgres://tierd@db/tierd", "postgres://tierd@db/tierd"},
		{"postgresql://db/t?password=" + secret + "&sslmode=disable", "postgresql://db/t?password=xxxxx&sslmode=disable"},
		{"postgres://tierd:" + secret + "@db:port/t", "postgres://(unparsable DSN)"},
		{"tierd:" + secret + "@db\x7f", "(unparsable DSN)"},
	}
	for _, tc := range cases {
		if got := DSN(tc.in).Redacted(); got != tc.want {
			t.Errorf("Redacted(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	c := Default()
	c.Cluster.Catalog = DSN("postgres://tierd:" + secret + "@db/t")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cfg", c, "catalog", c.Cluster.Catalog)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "cfg", c, "catalog", c.Cluster.Catalog)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c.Cluster.Catalog), fmt.Sprintf("%q", c.Cluster.Catalog), logs.String(), string(js)} {
		if strings.Contains(s, secret) {
			t.Errorf("a rendering shows the password: %s", s)
		}
		if !strings.Contains(s, "xxxxx") {
			t.Errorf("a rendering lost the DSN: %s", s)
		}
	}
	if string(c.Cluster.Catalog) != "postgres://tierd:"+secret+"@db/t" {
		t.Fatal("string(DSN) is not the DSN to connect with")
	}
}

func TestClusterWarnings(t *testing.T) {
	_, warns, err := Check("tierd.yaml", []byte("cluster:\n  flush_interval: 20ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0].Field != "cluster.flush_interval" || warns[0].Line != 2 || !strings.Contains(warns[0].Msg, "ignored") {
		t.Fatalf("warnings = %v, want cluster.flush_interval ignored", warns)
	}
	_, warns, err = Check("tierd.yaml", []byte(sharedStore+"cluster: {catalog: 'postgres://u@db/t', flush_interval: 20ms}\n"))
	if err != nil || len(warns) != 0 {
		t.Fatalf("a cluster configuration: %v, warnings %v", err, warns)
	}
}

// TestClusterExample: examples/cluster.yaml is a valid cluster
// configuration, every setting commented.
func TestClusterExample(t *testing.T) {
	path := filepath.Join("..", "examples", "cluster.yaml")
	c, warns, err := func() (Config, []FieldError, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, nil, err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") && !strings.Contains(s, " # ") {
				t.Errorf("%s:%d has no comment: %q", path, i+1, line)
			}
		}
		return Check(path, data)
	}()
	if err != nil || len(warns) != 0 {
		t.Fatalf("%s: %v, warnings %v", path, err, warns)
	}
	if !c.Cluster.Enabled() || c.Cluster.NodeID != "node-1" || !strings.HasPrefix(c.Cold.Store, "s3://") {
		t.Fatalf("%s is not a cluster configuration over S3: %+v", path, c)
	}
	want := Default().Cluster
	want.Catalog, want.NodeID = c.Cluster.Catalog, "node-1"
	if c.Cluster != want {
		t.Fatalf("%s: cluster = %+v, want the defaults spelled out %+v", path, c.Cluster, want)
	}
}
