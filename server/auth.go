package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/policy"
)

// Token is one bearer token the server accepts: a name for logs, its role,
// and the secret a request must present.
type Token struct {
	Name   string
	Role   policy.Role
	Secret string
}

// authenticator checks bearer tokens in constant time. Only the SHA-256 of
// each secret is kept, and every request is compared with every token,
// so neither the time taken nor a memory dump tells a secret.
type authenticator struct {
	tokens []storedToken
}

type storedToken struct {
	name  string
	level int
	sum   [sha256.Size]byte
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{}
	for _, t := range tokens {
		a.tokens = append(a.tokens, storedToken{name: t.Name, level: t.Role.Level(), sum: sha256.Sum256([]byte(t.Secret))})
	}
	return a
}

// identify returns the token presented by r: ok is false without an
// Authorization header, with one that is not "Bearer <token>", or with an
// unknown token.
func (a *authenticator) identify(r *http.Request) (name string, level int, ok bool) {
	h := r.Header.Get("Authorization")
	scheme, given, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", 0, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
	match := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			match = i // no early exit: every token costs the same
		}
	}
	if match < 0 {
		return "", 0, false
	}
	return a.tokens[match].name, a.tokens[match].level, true
}

// roleAnyone marks a route open to anyone, token or not (liveness): a
// route's role is always said, never left out.
const roleAnyone policy.Role = "anyone"

// unmatchedRole is what a request no route matches needs (before its 404
// or 405), so that an anonymous caller learns nothing about which paths
// exist.
const unmatchedRole = policy.RoleRead

// route registers h for pattern with the role a request needs. A role
// that is not one of policy's roles or roleAnyone (left out: "") is a
// programming error in the route table, which New hits at construction,
// so it panics, as http.ServeMux does for a conflicting pattern: every
// test that builds a Server catches it, and no route can be served
// silently as read.
func (s *Server) route(pattern string, role policy.Role, h http.Handler) {
	if role != roleAnyone && role.Level() == 0 {
		panic(fmt.Sprintf("server: route %q registered without a role (%q is none of read, write, admin, anyone)", pattern, role))
	}
	if _, dup := s.roles[pattern]; dup {
		panic(fmt.Sprintf("server: route %q registered twice", pattern))
	}
	s.roles[pattern] = role
	s.mux.Handle(pattern, h)
}

// requiredRole is the role a request matched to pattern needs: the one
// its route was registered with, unmatchedRole for none.
func (s *Server) requiredRole(pattern string) policy.Role {
	if role, ok := s.roles[pattern]; ok {
		return role
	}
	return unmatchedRole
}

// authorize checks r against the route's role and answers 401 (no or a
// wrong token) or 403 (a token whose role is too small) itself; it
// returns false when it did. The token never appears in the answer or the
// log, only its name.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, pattern string) bool {
	need := s.requiredRole(pattern)
	if s.auth == nil || need == roleAnyone {
		return true
	}
	name, level, ok := s.auth.identify(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tierd"`)
		s.log.Info("server: unauthenticated request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
		return false
	}
	if level < need.Level() {
		s.log.Info("server: request refused: role too small", "method", r.Method, "path", r.URL.Path, "token", name, "need", string(need))
		writeError(w, http.StatusForbidden, api.CodeForbidden, "token "+name+" may not do this: it needs the "+string(need)+" role")
		return false
	}
	return true
}
