package main

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
)

// serverTokens reads the secret of every configured token. An unset or
// empty secret stops start-up: a token nobody can present would silently
// lock its holders out, and an empty one would let anyone in.
func serverTokens(cfg policy.Config) ([]server.Token, error) {
	var out []server.Token
	for _, t := range cfg.Auth.Tokens {
		secret, err := t.Secret()
		if err != nil {
			return nil, fmt.Errorf("auth.tokens: %w", err)
		}
		out = append(out, server.Token{Name: t.Name, Role: t.Role, Secret: secret})
	}
	return out, nil
}

// checkOpenListen refuses an API without tokens on anything but loopback,
// unless insecure says the operator means it: an open archive on a
// network is a mistake more often than a choice.
func checkOpenListen(listen string, open, insecure bool) error {
	if !open || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen %q: no auth.tokens are configured, so the API would be open to anyone who can reach %s; "+
		"configure tokens, listen on 127.0.0.1, or pass --insecure-listen", listen, displayHost(host))
}

func displayHost(h string) string {
	if h == "" {
		return "every interface"
	}
	return h
}
