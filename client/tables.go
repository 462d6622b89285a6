package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/tierd/tierd/api"
)

// Table is a stream's Apache Iceberg table as GET
// /v1/streams/{stream}/table describes it.
type Table = api.Table

// TableQueries are ready queries of a table, one per engine.
type TableQueries = api.TableQueries

// TableSync is what a sync did to one stream's table.
type TableSync = api.TableSync

// TableSyncReport is the answer of POST /v1/tables/sync.
type TableSyncReport = api.TableSyncReport

// Table describes stream's Iceberg table. A stream without a table yet
// answers an *APIError with Code api.CodeNoTable, a server without tables
// one with api.CodeTablesDisabled (NoTable and TablesDisabled report them).
func (c *Client) Table(ctx context.Context, stream string) (Table, error) {
	var out Table
	if err := c.callJSON(ctx, http.MethodGet, "/v1/streams/"+url.PathEscape(stream)+"/table", nil, &out); err != nil {
		return Table{}, err
	}
	return out, nil
}

// SyncTables makes the Iceberg table of stream (of every stream when "")
// exactly its retained cold segments now, and reports each stream synced:
// after `tierctl catalog rebuild`, or to publish segments that were cold
// before tables were enabled. Syncing every stream reports a stream's
// failure in its TableSync (Failed counts them); one stream's failure is
// the error.
func (c *Client) SyncTables(ctx context.Context, stream string) (TableSyncReport, error) {
	q := url.Values{}
	if stream != "" {
		q.Set("stream", stream)
	}
	var out TableSyncReport
	if err := c.callJSON(ctx, http.MethodPost, "/v1/tables/sync", q, &out); err != nil {
		return TableSyncReport{}, err
	}
	return out, nil
}

// NoTable reports whether err is a server's answer that the stream has no
// table yet.
func NoTable(err error) bool { return apiCode(err) == api.CodeNoTable }

// TablesDisabled reports whether err is a server's answer that it
// publishes no tables (tables.enabled false, or no cold store).
func TablesDisabled(err error) bool { return apiCode(err) == api.CodeTablesDisabled }

func apiCode(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}
