package testenv_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func client(t *testing.T, mc *testenv.MinIO) *minio.Client {
	t.Helper()
	u, err := url.Parse(mc.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(mc.AccessKey, mc.SecretKey, ""), Region: testenv.Region, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// TestSharedServerFreshBuckets: tests share one server but get distinct,
// valid, empty buckets.
func TestSharedServerFreshBuckets(t *testing.T) {
	a := testenv.StartMinIO(t)
	b := testenv.StartMinIO(t)
	if a.Endpoint != b.Endpoint {
		t.Errorf("two calls started two servers: %s, %s", a.Endpoint, b.Endpoint)
	}
	if a.Bucket == b.Bucket {
		t.Fatalf("two calls got the same bucket %s", a.Bucket)
	}
	if !strings.HasPrefix(a.Endpoint, "http://127.0.0.1:") {
		t.Errorf("endpoint %s is not on loopback", a.Endpoint)
	}
	ctx := context.Background()
	c := client(t, a)
	for _, name := range []string{a.Bucket, b.Bucket} {
		if !bucketRE.MatchString(name) {
			t.Errorf("bucket name %q is not a valid S3 name", name)
		}
		ok, err := c.BucketExists(ctx, name)
		if err != nil || !ok {
			t.Errorf("bucket %s: exists=%v err=%v", name, ok, err)
		}
		for obj := range c.ListObjects(ctx, name, minio.ListObjectsOptions{Recursive: true}) {
			t.Errorf("fresh bucket %s holds %s (err %v)", name, obj.Key, obj.Err)
		}
	}
	u := a.URL("aws")
	want := "s3://" + a.Bucket + "/tierd?driver=aws&endpoint=" + url.QueryEscape(a.Endpoint) + "&region=us-east-1"
	if u != want {
		t.Errorf("URL = %s, want %s", u, want)
	}
}

// TestDedicatedStopRestart: Stop takes the server away, Restart brings it
// back on the same endpoint with its data.
func TestDedicatedStopRestart(t *testing.T) {
	mc := testenv.StartDedicatedMinIO(t)
	ctx := context.Background()
	c := client(t, mc)
	if _, err := c.PutObject(ctx, mc.Bucket, "k", strings.NewReader("v"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	health := mc.Endpoint + "/minio/health/live"
	hc := &http.Client{Timeout: 5 * time.Second}
	mc.Stop()
	if resp, err := hc.Get(health); err == nil {
		resp.Body.Close()
		t.Fatalf("server still answers after Stop: %s", resp.Status)
	}
	mc.Restart()
	resp, err := hc.Get(health)
	if err != nil {
		t.Fatalf("server does not answer after Restart: %v", err)
	}
	resp.Body.Close()
	info, err := c.StatObject(ctx, mc.Bucket, "k", minio.StatObjectOptions{})
	if err != nil || info.Size != 1 {
		t.Fatalf("object lost across restart: %+v, %v", info, err)
	}
}

// TestSkipOnlyWhenAsked: TIERD_SKIP_MINIO=1 skips, and says why.
func TestSkipOnlyWhenAsked(t *testing.T) {
	var skipped bool
	var msg string
	t.Run("inner", func(t *testing.T) {
		t.Setenv(testenv.SkipEnv, "1")
		defer func() { skipped = t.Skipped() }()
		testenv.StartMinIO(t)
		msg = "StartMinIO returned"
	})
	if !skipped {
		t.Fatalf("with %s=1, StartMinIO did not skip (%s)", testenv.SkipEnv, msg)
	}
}
