package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/tierd/tierd/api"
)

// Progress is how far a long operation (migrate, verify) is.
type Progress = api.Progress

// VerifyRequest selects what verify checks.
type VerifyRequest struct {
	// Stream limits the check to one stream; "" means every stream.
	Stream string
	// Progress, if set, is told how far the check is while it runs.
	Progress func(Progress)
}

// callLong sends a bodiless request for a long operation and decodes its
// result into v. With progress set it asks for the server's progress
// stream (docs/api.md, "Progress") and tells progress each line.
func (c *Client) callLong(ctx context.Context, method, path string, query url.Values, progress func(Progress), v any) error {
	if progress == nil {
		return c.callJSON(ctx, method, path, query, v)
	}
	resp, err := c.doAccept(ctx, method, path, query, nil, api.MediaNDJSON)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != api.MediaNDJSON {
		// The server answered at once, without progress.
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return fmt.Errorf("client: decoding %s %s: %w", method, path, err)
		}
		return nil
	}
	for line, err := range lines(resp.Body) {
		if err != nil {
			return err // an {"error":…} line is an *APIError here
		}
		var pl api.ProgressLine
		if err := json.Unmarshal(line, &pl); err != nil {
			return fmt.Errorf("client: decoding %s %s: %w", method, path, err)
		}
		switch {
		case pl.Progress != nil:
			progress(*pl.Progress)
		case pl.Result != nil:
			if err := json.Unmarshal(pl.Result, v); err != nil {
				return fmt.Errorf("client: decoding %s %s: %w", method, path, err)
			}
			return nil
		}
	}
	return fmt.Errorf("client: %s %s: the progress stream ended without a result", method, path)
}
