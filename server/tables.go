package server

import (
	"context"
	"net/http"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// TablesBackend is a Backend that publishes its streams' cold segments as
// Apache Iceberg tables (docs/analytics.md): GET /v1/streams/{stream}/table
// and POST /v1/tables/sync go to it. A backend without it answers them 404
// tables_disabled, as does one whose TablesEnabled is false.
type TablesBackend interface {
	// TablesEnabled reports whether the backend publishes tables now
	// (tables.enabled and a cold store).
	TablesEnabled() bool
	// Table describes stream's table: tablesync.ErrNoTable when it has
	// none yet.
	Table(ctx context.Context, stream string) (api.Table, error)
	// SyncTables makes the table of stream (of every stream when "")
	// exactly its retained cold segments now. One stream's failure is its
	// error; syncing every stream reports each stream's outcome in the
	// report and fails only when the streams cannot be listed.
	SyncTables(ctx context.Context, stream string) (api.TableSyncReport, error)
}

// tables is the backend's TablesBackend, or nil with the answer already
// written.
func (s *Server) tables(w http.ResponseWriter, r *http.Request) TablesBackend {
	tb, ok := s.eng.(TablesBackend)
	if !ok || !tb.TablesEnabled() {
		s.fail(w, r, tablesync.ErrDisabled)
		return nil
	}
	return tb
}

// handleTable answers GET /v1/streams/{stream}/table: 404 stream_not_found
// for a stream tierd does not know, 404 no_table for one that has no table
// yet.
func (s *Server) handleTable(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if _, err := adminParams(r); err != nil {
		s.fail(w, r, err)
		return
	}
	tb := s.tables(w, r)
	if tb == nil {
		return
	}
	if err := s.knownStream(r.Context(), stream); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := tb.Table(r.Context(), stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// handleTablesSync answers POST /v1/tables/sync[?stream=NAME]: the
// report of every stream synced (200 even when some failed: each says
// why, and Failed counts them); a single stream's failure is its own
// error status.
func (s *Server) handleTablesSync(w http.ResponseWriter, r *http.Request) {
	params, err := adminParams(r, "stream")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tb := s.tables(w, r)
	if tb == nil {
		return
	}
	stream := params.Get("stream")
	if params.Has("stream") {
		if err := s.knownStream(r.Context(), stream); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	ctx, stop := s.untilShutdown(r)
	defer stop()
	rep, err := tb.SyncTables(ctx, stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rep.Streams == nil {
		rep.Streams = []api.TableSync{} // a list, even empty, never null
	}
	writeJSON(w, http.StatusOK, rep)
}

// knownStream checks stream's name and that the backend knows it
// (tiers.ErrStreamNotFound otherwise).
func (s *Server) knownStream(ctx context.Context, stream string) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return err
	}
	_, err := s.eng.Retention(ctx, stream)
	return err
}
