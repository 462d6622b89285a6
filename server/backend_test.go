package server

import "github.com/tierd/tierd/engine"

// A local node's engine is a Backend as it is: the seam adds no method
// the engine lacks, and a change of an engine signature breaks the build
// here rather than in cmd/tierd.
var _ Backend = (*engine.Engine)(nil)
