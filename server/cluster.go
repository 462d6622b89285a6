package server

import (
	"context"
	"net/http"

	"github.com/tierd/tierd/api"
)

// ClusterBackend is a Backend that is a node of a cluster: GET /v1/cluster
// serves its answer. A backend without it (a local node) answers that
// route 404 not_in_cluster_mode, so a script can tell the two modes
// apart without guessing from other answers.
type ClusterBackend interface {
	// ClusterStatus lists every node the cluster's catalog knows, ordered
	// by node id, and names this node (Self). Its errors are classified as
	// any backend error (an unreachable catalog: 503).
	ClusterStatus(ctx context.Context) (api.ClusterStatus, error)
}

// handleCluster answers GET /v1/cluster.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.eng.(ClusterBackend)
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotInClusterMode, "this tierd runs in local mode (no cluster.catalog in its configuration), so it has no cluster to describe")
		return
	}
	st, err := cb.ClusterStatus(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if st.Nodes == nil {
		st.Nodes = []api.ClusterNode{} // a list, even empty, never null
	}
	writeJSON(w, http.StatusOK, st)
}
