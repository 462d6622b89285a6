package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "policies:\n  - {name: trading, streams: ['IF*'], hot: {max_age: 1h}, warm: {max_age: 1d}, cold: {max_age: 30d}}\n")
	bad := write("bad.yaml", "listen: nowhere\npolicies:\n  - {name: a, streams: ['['], warm: {max_age: 1d}}\n  - {name: a, streams: [x]}\n")
	warn := write("warn.yaml", "cold: {store: none}\npolicies:\n  - {name: a, streams: [x], warm: {max_age: 1d}}\n")
	badColumns := write("columns.yaml", "policies:\n  - name: a\n    streams: [x]\n    columns:\n      - {name: px, path: $.px, type: float}\n      - {name: amt, path: amount, type: decimal, precision: 18, scale: 4}\n")
	example := filepath.Join("..", "..", "examples", "tierd.yaml")

	cases := []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		noStderr   bool
		jsonValid  *bool
		jsonErrors int
	}{
		{name: "valid file", args: []string{"policy", "check", good}, code: 0,
			stdout: []string{good + ": OK", "trading  IF*", "1h", "30d", "default  (unmatched)", "forever"}, noStderr: true},
		{name: "the example", args: []string{"policy", "check", example, "--stream", "IC2406", "--stream", "audit.web", "--stream", "other"}, code: 0,
			stdout: []string{"IC2406     trading", "audit.web  audit", "other      default"}, noStderr: true},
		{name: "every error, located", args: []string{"policy", "check", bad}, code: 1,
			stderr: []string{bad + ":1: listen: ", bad + `:3: policies[0].streams[0]: "[" is not a valid glob`, bad + `:4: policies[1].name: "a" is already the name`, "error: " + bad + " is invalid (3 problems)"}},
		{name: "typed column errors, located", args: []string{"policy", "check", badColumns}, code: 1,
			stderr: []string{badColumns + `:5: policies[0].columns[0].type: "float" is not one of string, int64, double, bool, timestamp, decimal`,
				badColumns + `:6: policies[0].columns[1].path: "amount" does not start with $`, "(2 problems)"}},
		{name: "warnings keep exit 0", args: []string{"policy", "check", warn}, code: 0,
			stdout: []string{"OK"}, stderr: []string{warn + ":3: warning: policies[0].warm.max_age: deletes segments at 1d", warn + ":1: warning: cold.store: is none"}},
		{name: "json valid", args: []string{"policy", "check", good, "-o", "json"}, code: 0, jsonValid: ptr(true)},
		{name: "json invalid", args: []string{"policy", "check", bad, "-o", "json"}, code: 1, jsonValid: ptr(false), jsonErrors: 3},
		{name: "missing file", args: []string{"policy", "check", filepath.Join(dir, "nope.yaml")}, code: 1, stderr: []string{"no such file"}},
		{name: "no file", args: []string{"policy", "check"}, code: 2, stderr: []string{"wants one argument, FILE"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// No server: the address points nowhere, and check must not need it.
			r := tierctl(t, "http://127.0.0.1:1", "", tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			if tc.noStderr && r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			if tc.jsonValid != nil {
				var rep struct {
					Valid  bool `json:"valid"`
					Errors []struct {
						Line  int    `json:"line"`
						Field string `json:"field"`
					} `json:"errors"`
					Policies []struct {
						Name string `json:"name"`
					} `json:"policies"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
				}
				if rep.Valid != *tc.jsonValid || len(rep.Errors) != tc.jsonErrors {
					t.Fatalf("report = %+v", rep)
				}
				for _, e := range rep.Errors {
					if e.Line == 0 || e.Field == "" {
						t.Errorf("error without a location: %+v", e)
					}
				}
				if rep.Valid && (len(rep.Policies) != 2 || rep.Policies[0].Name != "trading" || rep.Policies[1].Name != "default") {
					t.Errorf("policies = %+v", rep.Policies)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
