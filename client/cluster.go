package client

import (
	"context"
	"errors"

	"github.com/tierd/tierd/api"
)

// ClusterStatus is GET /v1/cluster: the cluster's nodes and which one
// answered.
type ClusterStatus = api.ClusterStatus

// ClusterNode is one node of a cluster, as its last heartbeat left it.
type ClusterNode = api.ClusterNode

// Cluster returns the nodes of the cluster the server belongs to. A server
// in local mode answers an *APIError with Code api.CodeNotInClusterMode
// (NotInClusterMode reports it).
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var out ClusterStatus
	if err := c.getJSON(ctx, "/v1/cluster", &out); err != nil {
		return ClusterStatus{}, err
	}
	return out, nil
}

// NotInClusterMode reports whether err is a server's answer that it runs
// in local mode, not in a cluster.
func NotInClusterMode(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == api.CodeNotInClusterMode
}
