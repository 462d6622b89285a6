package objstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tierd/tierd/cold/objstore"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want objstore.Config
	}{
		{"s3://archive/tierd?endpoint=http://127.0.0.1:9000&region=us-east-1&driver=minio",
			objstore.Config{Scheme: "s3", Bucket: "archive", Prefix: "tierd", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", Driver: "minio"}},
		{"s3://archive", objstore.Config{Scheme: "s3", Bucket: "archive", Region: "us-east-1", Driver: "minio"}},
		{"s3://archive/", objstore.Config{Scheme: "s3", Bucket: "archive", Region: "us-east-1", Driver: "minio"}},
		{"s3://my.bucket-1/a/b/?driver=aws&region=eu-west-1",
			objstore.Config{Scheme: "s3", Bucket: "my.bucket-1", Prefix: "a/b", Region: "eu-west-1", Driver: "aws"}},
		{"s3://archive/tierd?endpoint=127.0.0.1:9000",
			objstore.Config{Scheme: "s3", Bucket: "archive", Prefix: "tierd", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", Driver: "minio"}},
		{"s3://archive?endpoint=localhost:9000",
			objstore.Config{Scheme: "s3", Bucket: "archive", Endpoint: "http://localhost:9000", Region: "us-east-1", Driver: "minio"}},
		{"s3://archive?endpoint=minio.internal:9000",
			objstore.Config{Scheme: "s3", Bucket: "archive", Endpoint: "https://minio.internal:9000", Region: "us-east-1", Driver: "minio"}},
		{"s3://archive?endpoint=https://s3.example.com/",
			objstore.Config{Scheme: "s3", Bucket: "archive", Endpoint: "https://s3.example.com", Region: "us-east-1", Driver: "minio"}},
		{"s3://archive/stream%3DA?endpoint=http%3A%2F%2F127.0.0.1%3A9000",
			objstore.Config{Scheme: "s3", Bucket: "archive", Prefix: "stream=A", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", Driver: "minio"}},
		{"file:///var/lib/tierd/cold", objstore.Config{Scheme: "file", Path: "/var/lib/tierd/cold"}},
		{"file:///var/lib/tierd/cold/", objstore.Config{Scheme: "file", Path: "/var/lib/tierd/cold"}},
		{"file://localhost/tmp/x", objstore.Config{Scheme: "file", Path: "/tmp/x"}},
	}
	for _, tc := range good {
		got, err := objstore.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
		}
	}

	bad := []struct {
		url  string
		says string // the error must mention this
	}{
		{"", "missing scheme"},
		{"archive/tierd", "missing scheme"},
		{"gs://bucket/x", `unsupported scheme "gs"`},
		{"s3://", "bucket"},
		{"s3://Archive", "bucket"},
		{"s3://ab", "bucket"},
		{"s3://a_b", "bucket"},
		{"s3://127.0.0.1", "bucket"},
		{"s3://bucket:9000/x", "bucket"},
		{"s3://archive/../x", "prefix"},
		{"s3://archive/a//b", "prefix"},
		{"s3://archive?endpoint=", "endpoint"},
		{"s3://archive?endpoint=ftp://host", "scheme"},
		{"s3://archive?endpoint=http://host/path", "endpoint"},
		{"s3://archive?endpoint=http://host:99999", "port"},
		{"s3://archive?driver=gcs", `driver "gcs"`},
		{"s3://archive?regoin=us-east-1", `unknown parameter "regoin"`},
		{"s3://archive?region=", "region"},
		{"s3://archive?region=a&region=b", "2 times"},
		{"s3://AKIA:hunter2-secret@archive/x", "credentials do not belong"},
		{"file://relative/path", "absolute path"},
		{"file:///x?mode=1", "no parameters"},
		{"file:", "absolute path"},
		{"s3://archive#frag", "fragment"},
		{"s3://archive/%zz", "invalid URL escape"},
	}
	for _, tc := range bad {
		_, err := objstore.ParseURL(tc.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", tc.url)
			continue
		}
		if !errors.Is(err, objstore.ErrInvalidURL) {
			t.Errorf("ParseURL(%q): %v is not ErrInvalidURL", tc.url, err)
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseURL(%q): error %q does not say %q", tc.url, err, tc.says)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q): error %q repeats the secret", tc.url, err)
		}
	}
}

// FuzzParseURL: no input panics, a secret in user info never reaches the
// error text, and every accepted URL yields a usable configuration.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"s3://archive/tierd?endpoint=http://127.0.0.1:9000&region=us-east-1&driver=minio",
		"file:///var/lib/tierd", "s3://k:hunter2@b/x", "s3://a?endpoint=[::1]:9000", "s3://archive/%41",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := objstore.ParseURL(raw)
		if err != nil {
			if strings.Contains(raw, ":hunter2@") && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q leaks the password", err)
			}
			return
		}
		switch cfg.Scheme {
		case "file":
			if !strings.HasPrefix(cfg.Path, "/") {
				t.Fatalf("file path %q is not absolute", cfg.Path)
			}
		case "s3":
			if cfg.Bucket == "" || cfg.Region == "" || (cfg.Driver != "minio" && cfg.Driver != "aws") {
				t.Fatalf("incomplete config %+v", cfg)
			}
			if cfg.Prefix != "" {
				if err := objstore.ValidateKey(cfg.Prefix); err != nil {
					t.Fatalf("prefix %q: %v", cfg.Prefix, err)
				}
			}
			if cfg.Endpoint != "" && !strings.HasPrefix(cfg.Endpoint, "http://") && !strings.HasPrefix(cfg.Endpoint, "https://") {
				t.Fatalf("endpoint %q has no scheme", cfg.Endpoint)
			}
		default:
			t.Fatalf("scheme %q accepted", cfg.Scheme)
		}
		_ = cfg.String()
	})
}
