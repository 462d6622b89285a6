package server

import (
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkGuardOverhead: one small request over a kept-alive loopback
// connection, served by a plain http.Server (the baseline, what tierd had)
// or by NewHTTPServer (limiter, ConnState, write progress deadlines).
func BenchmarkGuardOverhead(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	for _, tc := range []struct {
		name  string
		serve func(ln net.Listener) func()
	}{
		{"plain", func(ln net.Listener) func() {
			srv := &http.Server{Handler: h}
			go srv.Serve(ln)
			return func() { srv.Close() }
		}},
		{"guarded", func(ln net.Listener) func() {
			srv, sln := NewHTTPServer(h, ln, HTTPOptions{})
			go srv.Serve(sln)
			return func() { srv.Close() }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer tc.serve(ln)()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			url := "http://" + ln.Addr().String() + "/healthz"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
