package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

// runUntilExit runs tierd with args and env and returns its exit code and
// output, for configurations it must refuse at start-up.
func runUntilExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	bin := testenv.TierdBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("tierd %v did not exit; output:\n%s", args, out.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

func get(t *testing.T, hc *http.Client, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAuthRealBinary: the daemon reads token secrets from the environment
// and a file, enforces roles, and never logs a secret.
func TestAuthRealBinary(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "ops.token")
	os.WriteFile(tokFile, []byte("ops-file-secret-9\n"), 0o600)
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
auth:
  tokens:
    - {name: ingest, role: write, token_env: TIERD_TEST_INGEST}
    - {name: ops, role: admin, token_file: %q}
`, tokFile)), 0o644)
	d := startDaemonEnv(t, config, filepath.Join(dir, "data"), "TIERD_TEST_INGEST=ingest-env-secret-7")
	base := "http://" + d.addr
	hc := http.DefaultClient
	if s := get(t, hc, base+"/v1/streams", ""); s != 401 {
		t.Fatalf("no token: %d, want 401", s)
	}
	if s := get(t, hc, base+"/v1/streams", "ingest-env-secret-7"); s != 200 {
		t.Fatalf("write token reading: %d, want 200", s)
	}
	if s := get(t, hc, base+"/v1/streams/x/explain", "ingest-env-secret-7"); s != 403 {
		t.Fatalf("write token on explain: %d, want 403", s)
	}
	if s := get(t, hc, base+"/metrics", "ops-file-secret-9"); s != 200 {
		t.Fatalf("admin token on /metrics: %d, want 200", s)
	}
	if s := get(t, hc, base+"/healthz", ""); s != 200 {
		t.Fatalf("healthz without a token: %d, want 200", s)
	}
	d.stop(t)
	logs := d.logs()
	for _, secret := range []string{"ingest-env-secret-7", "ops-file-secret-9"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds a token:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "tokens=2") {
		t.Fatalf("the start-up line does not say tokens are on:\n%s", logs)
	}
}

// TestStartupRefusals: an open API beyond loopback, a token whose secret
// is missing, and a broken TLS pair stop tierd at start with a clear
// message; --insecure-listen opens it on purpose, with a warning.
func TestStartupRefusals(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	code, out := runUntilExit(t, nil, "--data-dir", data, "--listen", "0.0.0.0:0")
	if code == 0 || !strings.Contains(out, "no auth.tokens") || !strings.Contains(out, "--insecure-listen") {
		t.Fatalf("open API on 0.0.0.0: exit %d\n%s", code, out)
	}
	config := filepath.Join(dir, "tokens.yaml")
	os.WriteFile(config, []byte("auth:\n  tokens:\n    - {name: ingest, role: write, token_env: TIERD_TEST_UNSET_TOKEN}\n"), 0o644)
	code, out = runUntilExit(t, nil, "--config", config, "--data-dir", data, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, `token "ingest"`) || !strings.Contains(out, "TIERD_TEST_UNSET_TOKEN is not set") {
		t.Fatalf("missing secret: exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "badtls.yaml")
	os.WriteFile(bad, []byte("tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}\n"), 0o644)
	code, out = runUntilExit(t, nil, "--config", bad, "--data-dir", data, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "tls:") {
		t.Fatalf("broken TLS files: exit %d\n%s", code, out)
	}

	// --insecure-listen: it starts, says the API is open, and serves.
	d := testenv.StartTierd(t, testenv.TierdOptions{DataDir: data, Listen: "0.0.0.0:0", Args: []string{"--insecure-listen"}})
	if host, _, _ := net.SplitHostPort(d.ListenAddr()); !net.ParseIP(host).IsUnspecified() {
		t.Fatalf("tierd --insecure-listen listens on %s, not on every interface", d.ListenAddr())
	}
	waitHealthy(t, http.DefaultClient, d.URL(), d.RunLogs)
	if !strings.Contains(d.RunLogs(), "the API is open") {
		t.Fatalf("no warning about the open API:\n%s", d.RunLogs())
	}
}

func waitHealthy(t *testing.T, hc *http.Client, base string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tierd never answered at %s:\n%s", base, logs())
}

// TestTLS: with tls.cert_file and tls.key_file the API is HTTPS only.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf("tls: {cert_file: %q, key_file: %q}\n", certFile, keyFile)), 0o644)
	d := testenv.StartTierd(t, testenv.TierdOptions{Config: config, DataDir: filepath.Join(dir, "data")})
	addr := d.Addr()
	if d.URL() != "https://"+addr {
		t.Fatalf("the listening line gives %s, want https://%s", d.URL(), addr)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitHealthy(t, hc, "https://"+addr, d.RunLogs)
	if s := get(t, hc, "https://"+addr+"/v1/streams", ""); s != 200 {
		t.Fatalf("GET over HTTPS: %d", s)
	}
	resp, err := http.Get("http://" + addr + "/v1/streams")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP was served: %s", body)
		}
	}
	if !strings.Contains(d.RunLogs(), "scheme=https") {
		t.Fatalf("the start-up line does not say https:\n%s", d.RunLogs())
	}
}

// selfSigned returns a certificate and key for 127.0.0.1, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tierd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
