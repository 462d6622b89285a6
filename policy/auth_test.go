package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAuth(t *testing.T) {
	in := `
auth:
  tokens:
    - {name: ingest, role: write, token_env: TIERD_TOKEN_INGEST}
    - name: ops
      role: admin
      token_file: /etc/tierd/ops.token
tls: {cert_file: /etc/tierd/cert.pem, key_file: /etc/tierd/key.pem}
`
	c, err := Parse("tierd.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []TokenConfig{
		{Name: "ingest", Role: RoleWrite, TokenEnv: "TIERD_TOKEN_INGEST"},
		{Name: "ops", Role: RoleAdmin, TokenFile: "/etc/tierd/ops.token"},
	}
	if len(c.Auth.Tokens) != 2 || c.Auth.Tokens[0] != want[0] || c.Auth.Tokens[1] != want[1] {
		t.Fatalf("tokens = %+v, want %+v", c.Auth.Tokens, want)
	}
	if !c.TLS.Enabled() || c.TLS.CertFile != "/etc/tierd/cert.pem" || c.TLS.KeyFile != "/etc/tierd/key.pem" {
		t.Fatalf("tls = %+v", c.TLS)
	}
	if d := Default(); len(d.Auth.Tokens) != 0 || d.TLS.Enabled() {
		t.Fatalf("the defaults have auth or TLS: %+v %+v", d.Auth, d.TLS)
	}
}

func TestParseAuthErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"bad role", "auth:\n  tokens:\n    - {name: a, role: root, token_env: X}\n", []loc{{3, "auth.tokens[0].role", `"root" is not a role`}}},
		{"no secret source", "auth:\n  tokens:\n    - {name: a, role: read}\n", []loc{{3, "auth.tokens[0]", "needs token_env"}}},
		{"both sources", "auth:\n  tokens:\n    - {name: a, role: read, token_env: X, token_file: /f}\n", []loc{{3, "auth.tokens[0].token_file", "not both"}}},
		{"duplicate name", "auth:\n  tokens:\n    - {name: a, role: read, token_env: X}\n    - {name: a, role: admin, token_env: Y}\n", []loc{{4, "auth.tokens[1].name", `"a" is already the name of auth.tokens[0]`}}},
		{"missing name", "auth:\n  tokens:\n    - {role: read, token_env: X}\n", []loc{{3, "auth.tokens[0].name", "every token needs a name"}}},
		{"a literal token is refused", "auth:\n  tokens:\n    - {name: a, role: read, token: s3cret}\n", []loc{
			{3, "auth.tokens[0]", "needs token_env"},
			{3, "auth.tokens[0].token", "unknown field"}}},
		{"half of tls", "tls: {cert_file: /c.pem}\n", []loc{{1, "tls.key_file", "both cert_file and key_file"}}},
		{"unknown auth field", "auth: {users: []}\n", []loc{{1, "auth.users", "unknown field"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("tierd.yaml", []byte(tc.in))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse = %+v, %v; want a *ValidationError", got, err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestTokenSecret(t *testing.T) {
	t.Setenv("TIERD_TEST_TOKEN", "  from-env\n")
	t.Setenv("TIERD_TEST_EMPTY", "")
	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct {
		tok     TokenConfig
		want    string
		wantErr string
	}{
		{TokenConfig{Name: "e", TokenEnv: "TIERD_TEST_TOKEN"}, "from-env", ""},
		{TokenConfig{Name: "f", TokenFile: file}, "from-file", ""},
		{TokenConfig{Name: "u", TokenEnv: "TIERD_TEST_UNSET_VARIABLE"}, "", "TIERD_TEST_UNSET_VARIABLE is not set"},
		{TokenConfig{Name: "z", TokenEnv: "TIERD_TEST_EMPTY"}, "", `token "z" is empty`},
		{TokenConfig{Name: "ze", TokenFile: empty}, "", `token "ze" is empty`},
		{TokenConfig{Name: "m", TokenFile: filepath.Join(t.TempDir(), "missing")}, "", "no such file"},
	} {
		got, err := tc.tok.Secret()
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: Secret() = %q, %v; want %q", tc.tok.Name, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrNoSecret) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Secret() = %q, %v; want ErrNoSecret mentioning %q", tc.tok.Name, got, err, tc.wantErr)
		}
	}
	if RoleRead.Level() >= RoleWrite.Level() || RoleWrite.Level() >= RoleAdmin.Level() || Role("x").Level() != 0 {
		t.Error("roles are not ordered read < write < admin")
	}
}
