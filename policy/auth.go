package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Role is what a token may do. Each role includes the ones before it.
type Role string

// The roles, from least to most.
const (
	// RoleRead may read records and list streams, segments and status.
	RoleRead Role = "read"
	// RoleWrite may also append.
	RoleWrite Role = "write"
	// RoleAdmin may also migrate, verify, offload and explain.
	RoleAdmin Role = "admin"
)

// Level orders the roles: read 1, write 2, admin 3; 0 for an unknown one.
func (r Role) Level() int {
	switch r {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// AuthConfig is the auth: section. With no tokens the API is open, and
// tierd then listens only on loopback unless told otherwise.
type AuthConfig struct {
	Tokens []TokenConfig
}

// TokenConfig is one entry of auth.tokens: a named bearer token and its
// role. The secret itself is never in the file: it comes from the
// environment variable TokenEnv or the file TokenFile (exactly one).
type TokenConfig struct {
	Name      string
	Role      Role
	TokenEnv  string
	TokenFile string
}

// ErrNoSecret reports a token whose variable or file is unset or empty.
var ErrNoSecret = errors.New("policy: token secret missing")

// Secret reads the token's secret from its environment variable or file,
// trimming surrounding white space (a trailing newline in a file). An
// empty secret is ErrNoSecret: it would let anyone in. The error names the
// token and where it looked, never the secret.
func (t TokenConfig) Secret() (string, error) {
	var s string
	switch {
	case t.TokenEnv != "":
		v, ok := os.LookupEnv(t.TokenEnv)
		if !ok {
			return "", fmt.Errorf("%w: token %q: environment variable %s is not set", ErrNoSecret, t.Name, t.TokenEnv)
		}
		s = v
	case t.TokenFile != "":
		b, err := os.ReadFile(t.TokenFile)
		if err != nil {
			return "", fmt.Errorf("%w: token %q: %v", ErrNoSecret, t.Name, err)
		}
		s = string(b)
	default:
		return "", fmt.Errorf("%w: token %q has neither token_env nor token_file", ErrNoSecret, t.Name)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: token %q is empty", ErrNoSecret, t.Name)
	}
	return s, nil
}

// TLSConfig is the tls: section: HTTPS when both files are set.
type TLSConfig struct {
	CertFile string
	KeyFile  string
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// authFields is the auth: section.
func authFields(a *AuthConfig) []field {
	return []field{
		{"tokens", func(d *decoder, n ast.Node, p string) {
			d.sequence(n, p, func(d *decoder, n ast.Node, p string) {
				a.Tokens = append(a.Tokens, TokenConfig{})
				t := &a.Tokens[len(a.Tokens)-1]
				d.mapping(n, p, []field{
					{"name", func(d *decoder, n ast.Node, p string) { d.str(n, p, &t.Name) }},
					{"role", func(d *decoder, n ast.Node, p string) {
						var s string
						d.str(n, p, &s)
						t.Role = Role(s)
					}},
					{"token_env", func(d *decoder, n ast.Node, p string) { d.str(n, p, &t.TokenEnv) }},
					{"token_file", func(d *decoder, n ast.Node, p string) { d.str(n, p, &t.TokenFile) }},
				})
			})
		}},
	}
}

// tlsFields is the tls: section.
func tlsFields(t *TLSConfig) []field {
	return []field{
		{"cert_file", func(d *decoder, n ast.Node, p string) { d.str(n, p, &t.CertFile) }},
		{"key_file", func(d *decoder, n ast.Node, p string) { d.str(n, p, &t.KeyFile) }},
	}
}

// checkAuth applies the rules of the auth: and tls: sections.
func (v *validator) checkAuth(c *Config) {
	names := map[string]int{}
	for i, t := range c.Auth.Tokens {
		at := fmt.Sprintf("auth.tokens[%d]", i)
		if v.ok(at+".name") && strings.TrimSpace(t.Name) == "" {
			v.errorf(at+".name", "every token needs a name (it names the caller in logs)")
		} else if j, dup := names[t.Name]; dup && t.Name != "" {
			v.errorf(at+".name", "%q is already the name of auth.tokens[%d]", t.Name, j)
		} else {
			names[t.Name] = i
		}
		if v.ok(at+".role") && t.Role.Level() == 0 {
			v.errorf(at+".role", "%q is not a role (read, write or admin)", string(t.Role))
		}
		switch {
		case !v.ok(at+".token_env", at+".token_file"):
		case t.TokenEnv == "" && t.TokenFile == "":
			v.errorf(at, "needs token_env (an environment variable) or token_file (a file) holding the secret")
		case t.TokenEnv != "" && t.TokenFile != "":
			v.errorf(at+".token_file", "give token_env or token_file, not both")
		}
	}
	if v.ok("tls.cert_file", "tls.key_file") && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		field := "tls.key_file"
		if c.TLS.CertFile == "" {
			field = "tls.cert_file"
		}
		v.errorf(field, "tls needs both cert_file and key_file")
	}
}
