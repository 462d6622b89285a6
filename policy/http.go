package policy

import (
	"time"

	"github.com/goccy/go-yaml/ast"
)

// HTTPConfig is the http: section: how long a client may hold the API's
// connections and how many it may open.
type HTTPConfig struct {
	// ReadTimeout bounds reading a request, header and body, from its
	// first byte. The answer may then take as long as it needs (long-polls,
	// streamed reads, verify).
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for
	// its next request, and cuts a response its client stopped reading.
	IdleTimeout time.Duration
	// MaxConnections caps the connections open at once (a small reserve
	// for health checks comes on top).
	MaxConnections int
}

// maxMaxConnections is far beyond any open-file limit; a larger value is a
// typo.
const maxMaxConnections = 1 << 24

// httpFields is the http: section.
func httpFields(h *HTTPConfig) []field {
	return []field{
		{"read_timeout", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &h.ReadTimeout) }},
		{"idle_timeout", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &h.IdleTimeout) }},
		{"max_connections", func(d *decoder, n ast.Node, p string) { d.integer(n, p, &h.MaxConnections) }},
	}
}

// checkHTTP applies the rules of the http: section: every connection is
// bounded, so no timeout may be off.
func (v *validator) checkHTTP(c *Config) {
	for _, f := range []struct {
		field string
		d     time.Duration
	}{
		{"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout},
	} {
		if v.ok(f.field) && f.d <= 0 {
			v.errorf(f.field, "%s must be positive: every connection needs a deadline", FormatDuration(f.d))
		}
	}
	if v.ok("http.max_connections") && (c.HTTP.MaxConnections < 1 || c.HTTP.MaxConnections > maxMaxConnections) {
		v.errorf("http.max_connections", "%d is not from 1 to %d", c.HTTP.MaxConnections, maxMaxConnections)
	}
}
