package main

import (
	"log/slog"

	"github.com/tierd/tierd/server"
	"golang.org/x/sys/unix"
)

// ownFiles is what tierd keeps of its open-file limit for itself beyond
// the API's connections: WAL and warm files being written, the catalog,
// the cold store's connections, directories being synced.
const ownFiles = 256

// fitConnections returns http.max_connections lowered, with a warning, so
// that the connections (with their reserve and those being refused) leave
// ownFiles of the process's open-file limit: a cap above the limit would
// never act, and connections would take the descriptors the WAL needs to
// rotate. Go raises the soft limit to the hard one at start, so the limit
// read here is the one the process has.
func fitConnections(want int, log *slog.Logger) int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return want
	}
	need := func(n int) uint64 { return uint64(n + server.ReservedConnections(n) + server.MaxRefusing + ownFiles) }
	if need(want) <= lim.Cur {
		return want
	}
	fit := want
	for fit > 1 && need(fit) > lim.Cur {
		fit = max(1, fit-max(1, int(need(fit)-lim.Cur)))
	}
	log.Warn("http.max_connections lowered to fit the open-file limit; raise the limit (e.g. LimitNOFILE= in the systemd unit) to allow more",
		"max_connections", want, "effective", fit, "open_file_limit", lim.Cur)
	return fit
}
