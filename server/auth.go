package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

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

// requiredRole is the role a route needs: reading and listing need read,
// appending write, and the operator's endpoints admin. "" means open to
// anyone (liveness). Unknown routes need read, so that an anonymous caller
// learns nothing about which paths exist. Seal is an operator's endpoint:
// each call makes a segment file and a catalog entry, so a producer's
// token must not be able to cut a stream into one segment per record.
func requiredRole(pattern string) policy.Role {
	switch pattern {
	case "GET /healthz":
		return ""
	case "POST /v1/streams/{stream}/records":
		return policy.RoleWrite
	case "POST /v1/migrate", "POST /v1/verify", "GET /v1/streams/{stream}/explain",
		"POST /v1/streams/{stream}/segments/{base}/offload", "POST /v1/streams/{stream}/seal":
		return policy.RoleAdmin
	}
	return policy.RoleRead
}

// authorize checks r against the route's role and answers 401 (no or a
// wrong token) or 403 (a token whose role is too small) itself; it
// returns false when it did. The token never appears in the answer or the
// log, only its name.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, pattern string) bool {
	need := requiredRole(pattern)
	if s.auth == nil || need == "" {
		return true
	}
	name, level, ok := s.auth.identify(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tierd"`)
		s.log.Info("server: unauthenticated request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)")
		return false
	}
	if level < need.Level() {
		s.log.Info("server: request refused: role too small", "method", r.Method, "path", r.URL.Path, "token", name, "need", string(need))
		writeError(w, http.StatusForbidden, "forbidden", "token "+name+" may not do this: it needs the "+string(need)+" role")
		return false
	}
	return true
}
