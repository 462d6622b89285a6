package main

import (
	"strings"
	"testing"
)

func TestCheckOpenListen(t *testing.T) {
	for _, tc := range []struct {
		listen         string
		open, insecure bool
		wantErr        string
	}{
		{"127.0.0.1:7070", true, false, ""},
		{"[::1]:7070", true, false, ""},
		{"localhost:7070", true, false, ""},
		{"0.0.0.0:7070", true, false, "no auth.tokens"},
		{":7070", true, false, "every interface"},
		{"10.1.2.3:7070", true, false, "--insecure-listen"},
		{"0.0.0.0:7070", true, true, ""},
		{"0.0.0.0:7070", false, false, ""},
	} {
		err := checkOpenListen(tc.listen, tc.open, tc.insecure)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkOpenListen(%q, open %t, insecure %t) = %v, want %q", tc.listen, tc.open, tc.insecure, err, tc.wantErr)
		}
	}
}
