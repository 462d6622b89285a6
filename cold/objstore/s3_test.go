package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/testenv"
)

var drivers = []string{objstore.DriverMinio, objstore.DriverAWS}

// TestStoreDown: with MinIO stopped, calls fail on their own (not by the
// caller's deadline, which is only a guard) with an error naming the
// operation, the key and the store; after a restart they work again.
func TestStoreDown(t *testing.T) {
	mc := testenv.StartDedicatedMinIO(t)
	buckets := map[string]objstore.Bucket{}
	for _, d := range drivers {
		buckets[d] = openURL(t, mc.URL(d), objstore.Options{AccessKey: mc.AccessKey, SecretKey: mc.SecretKey})
		put(t, buckets[d], "before", []byte("data"))
	}
	mc.Stop()
	for _, d := range drivers {
		b := buckets[d]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		errs := map[string]error{
			"put": b.Put(ctx, "during", bytes.NewReader(pattern(1<<20, 7)), 1<<20),
		}
		_, errs["get"] = b.Get(ctx, "before")
		_, errs["get range"] = b.GetRange(ctx, "before", 1, 2)
		_, errs["stat"] = b.Stat(ctx, "before")
		errs["delete"] = b.Delete(ctx, "before")
		for _, err := range b.List(ctx, "") {
			errs["list"] = err
		}
		cancel()
		t.Logf("%s: six calls failed in %v", d, time.Since(start).Round(time.Millisecond))
		for op, err := range errs {
			switch {
			case err == nil:
				t.Errorf("%s: %s with MinIO down succeeded", d, op)
			case errors.Is(err, context.DeadlineExceeded):
				t.Errorf("%s: %s with MinIO down ran into the caller's 2-minute deadline instead of failing: %v", d, op, err)
			case errors.Is(err, objstore.ErrNotFound):
				t.Errorf("%s: %s with MinIO down reports not-found: %v", d, op, err)
			case !strings.Contains(err.Error(), op) || !strings.Contains(err.Error(), mc.Bucket):
				t.Errorf("%s: %s error %q names neither the op nor the bucket", d, op, err)
			}
		}
		if !strings.Contains(errs["put"].Error(), `during"`) {
			t.Errorf("%s: put error %q does not name the key", d, errs["put"])
		}
	}
	mc.Restart()
	for _, d := range drivers {
		b := buckets[d]
		if got := get(t, b, "before"); string(got) != "data" {
			t.Errorf("%s: after restart Get = %q", d, got)
		}
		put(t, b, "after", []byte("more"))
		if _, err := b.Stat(context.Background(), "during"); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("%s: the Put that failed while MinIO was down left an object: %v", d, err)
		}
	}
}

// TestCredentialsNeverLeak: a wrong secret fails every call, and neither
// the errors nor the logs contain it.
func TestCredentialsNeverLeak(t *testing.T) {
	mc := testenv.StartMinIO(t)
	const secret = "wrong-secret-Zq8XkP3vW9"
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b := openURL(t, mc.URL(d), objstore.Options{AccessKey: mc.AccessKey, SecretKey: secret, Logger: logger})
			ctx := context.Background()
			var errs []error
			errs = append(errs, b.Put(ctx, "k", strings.NewReader("v"), 1))
			_, err := b.Get(ctx, "k")
			errs = append(errs, err)
			_, err = b.Stat(ctx, "k")
			errs = append(errs, err)
			for _, err := range b.List(ctx, "") {
				errs = append(errs, err)
			}
			for i, err := range errs {
				if err == nil {
					t.Errorf("call %d with a wrong secret succeeded", i)
					continue
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals the secret: %v", err)
				}
				if errors.Is(err, objstore.ErrNotFound) {
					t.Errorf("an auth failure reads as not-found: %v", err)
				}
			}
			if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), mc.SecretKey) {
				t.Errorf("logs reveal a secret:\n%s", logs.String())
			}
			if logs.Len() == 0 {
				t.Errorf("Open logged nothing; the leak check would be empty")
			}
		})
	}
}

// TestEnvCredentials: without credentials in Options, both drivers find
// them in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (for aws, through the
// SDK's default chain).
func TestEnvCredentials(t *testing.T) {
	mc := testenv.StartMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", mc.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", mc.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	for _, d := range drivers {
		b := openURL(t, mc.URL(d), objstore.Options{})
		put(t, b, "env-"+d, []byte("ok"))
		if got := get(t, b, "env-"+d); string(got) != "ok" {
			t.Errorf("%s: Get = %q", d, got)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	for _, d := range drivers {
		b := openURL(t, mc.URL(d), objstore.Options{})
		if err := b.Put(context.Background(), "x", strings.NewReader("v"), 1); err == nil {
			t.Errorf("%s: Put with a wrong secret in the environment succeeded", d)
		}
	}
}

// TestPrefixIsolation: two URLs with different prefixes on one bucket do
// not see each other's objects, and the prefix is really in the key.
func TestPrefixIsolation(t *testing.T) {
	mc := testenv.StartMinIO(t)
	opts := objstore.Options{AccessKey: mc.AccessKey, SecretKey: mc.SecretKey}
	withPrefix := openURL(t, mc.URL(objstore.DriverMinio), opts)
	root := openURL(t, strings.Replace(mc.URL(objstore.DriverAWS), "/tierd?", "?", 1), opts)
	put(t, withPrefix, "stream=A/x", []byte("1"))
	if keys, _ := listKeys(t, root, ""); len(keys) != 1 || keys[0] != "tierd/stream=A/x" {
		t.Fatalf("bucket root lists %q, want [tierd/stream=A/x]", keys)
	}
	if keys, _ := listKeys(t, withPrefix, ""); len(keys) != 1 || keys[0] != "stream=A/x" {
		t.Fatalf("prefixed bucket lists %q, want [stream=A/x]", keys)
	}
	if a, err := withPrefix.Stat(context.Background(), "stream=A/x"); err != nil || a.Key != "stream=A/x" {
		t.Fatalf("Stat through the prefix = %+v, %v", a, err)
	}
}
