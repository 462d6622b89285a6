package objstore

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Drivers select the S3 client library behind an s3:// URL. Both speak to
// AWS S3 and MinIO; minio-go is the default because it is smaller and
// streams multipart uploads itself, aws-sdk-go-v2 brings the full AWS
// credential chain (SSO, web identity, instance roles).
const (
	DriverMinio = "minio"
	DriverAWS   = "aws"
)

// DefaultRegion is the region used when an s3:// URL names none.
const DefaultRegion = "us-east-1"

// Config is a parsed store URL.
type Config struct {
	Scheme string // "s3" or "file"
	// s3
	Bucket   string
	Prefix   string // without leading or trailing slash; "" for none
	Endpoint string // scheme://host[:port]; "" means AWS S3
	Region   string
	Driver   string // DriverMinio or DriverAWS
	// file
	Path string // absolute, cleaned
}

// String renders the configuration for logs and errors. A URL carries no
// credentials (ParseURL rejects them), so this is safe to print.
func (c Config) String() string {
	if c.Scheme == "file" {
		return "file://" + c.Path
	}
	s := "s3://" + c.Bucket
	if c.Prefix != "" {
		s += "/" + c.Prefix
	}
	ep := c.Endpoint
	if ep == "" {
		ep = "aws"
	}
	return fmt.Sprintf("%s (driver %s, endpoint %s, region %s)", s, c.Driver, ep, c.Region)
}

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL parses a cold.store URL:
//
//	s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION][&driver=minio|aws]
//	file:///absolute/path
//
// BUCKET follows the S3 naming rules. PREFIX must itself be a valid key
// (ValidateKey). endpoint is http://host:port or https://host:port; without
// a scheme it means http for a loopback host (a local MinIO) and https for
// anything else; omitted, the store is AWS S3. region defaults to
// us-east-1, driver to minio. Credentials in the URL and unknown parameters
// are rejected: the URL is logged, and a typo must not silently fall back to
// a default.
func ParseURL(raw string) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		shown, hidden := redactURL(raw)
		detail := fmt.Sprintf(format, args...)
		if hidden != "" {
			detail = strings.ReplaceAll(detail, hidden, "REDACTED")
		}
		return Config{}, fmt.Errorf("%w %q: %s", ErrInvalidURL, shown, detail)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("%v", errUnwrapURL(err))
	}
	if u.User != nil {
		return bad("credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return bad("unexpected fragment or opaque part")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("a file URL needs an absolute path: file:///path (got host %q)", u.Host)
		}
		if u.RawQuery != "" {
			return bad("a file URL takes no parameters")
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return bad("a file URL needs an absolute path: file:///path")
		}
		return Config{Scheme: "file", Path: path.Clean(u.Path)}, nil
	case "s3":
	case "":
		return bad("missing scheme; use s3://BUCKET/PREFIX or file:///path")
	default:
		return bad("unsupported scheme %q; use s3 or file", u.Scheme)
	}
	cfg := Config{Scheme: "s3", Bucket: u.Host, Region: DefaultRegion, Driver: DriverMinio}
	if !bucketRE.MatchString(cfg.Bucket) || strings.Contains(cfg.Bucket, "..") || net.ParseIP(cfg.Bucket) != nil {
		return bad("bucket %q is not a valid S3 bucket name (3-63 of a-z 0-9 . -)", cfg.Bucket)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if err := ValidateKey(p); err != nil {
			return bad("prefix: %v", err)
		}
		cfg.Prefix = p
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return bad("parameter %q given %d times", k, len(v))
		}
		switch k {
		case "endpoint":
			ep, err := parseEndpoint(v[0])
			if err != nil {
				return bad("endpoint: %v", err)
			}
			cfg.Endpoint = ep
		case "region":
			if v[0] == "" {
				return bad("empty region")
			}
			cfg.Region = v[0]
		case "driver":
			if v[0] != DriverMinio && v[0] != DriverAWS {
				return bad("driver %q: want %q or %q", v[0], DriverMinio, DriverAWS)
			}
			cfg.Driver = v[0]
		default:
			return bad("unknown parameter %q (known: endpoint, region, driver)", k)
		}
	}
	return cfg, nil
}

// parseEndpoint normalizes an endpoint to scheme://host[:port].
func parseEndpoint(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty")
	}
	if !strings.Contains(s, "://") {
		host := s
		if h, _, err := net.SplitHostPort(s); err == nil {
			host = h
		}
		if isLoopback(host) {
			s = "http://" + s
		} else {
			s = "https://" + s
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errUnwrapURL(err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want http(s)://host[:port] and nothing else", s)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return "", fmt.Errorf("port %q: %v", p, err)
		}
	}
	return u.Scheme + "://" + u.Host, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// errUnwrapURL drops url.Error's quoting of the whole URL, which
// ParseURL's message already carries (redacted).
func errUnwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// redactURL hides any user info before a URL is put in an error message.
// It works on the raw text, since a URL that fails to parse (or parses as
// opaque) may still carry a password before an "@". It returns the
// redacted URL and the hidden part, which error details must not repeat.
func redactURL(raw string) (string, string) {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw, ""
	}
	start := 0
	if i := strings.Index(raw[:at], "://"); i >= 0 {
		start = i + 3
	} else if i := strings.Index(raw[:at], ":"); i >= 0 {
		start = i + 1
	}
	return raw[:start] + "REDACTED" + raw[at:], raw[start:at]
}
