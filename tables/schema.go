package tables

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

// The file metadata keys of cold/pqfile this package reads (format.go there
// is the authority; they are repeated so that this package depends on the
// file format, not on the reader's code).
const (
	metaStream        = "tierd.stream"
	metaBase          = "tierd.base"
	metaLast          = "tierd.last"
	metaCount         = "tierd.count"
	metaFormatVersion = "tierd.format_version"
)

// baseColumns is the fixed start of a format-2 file's schema (leaf paths in
// order) and the Iceberg type each maps to. Field ids are the table's: the
// files carry none, the table's name mapping resolves them by name.
var baseColumns = []struct {
	path string
	ok   func(c *schema.Column) bool
}{
	{"offset", func(c *schema.Column) bool { return isInt(c, parquet.Types.Int64, 64) }},
	{"ts", func(c *schema.Column) bool { return isLocalMicros(c) }},
	{"ts_nanos", func(c *schema.Column) bool { return isInt(c, parquet.Types.Int32, 32) }},
	{"key", func(c *schema.Column) bool { return isString(c) }},
	{"tags.list.element", func(c *schema.Column) bool { return isString(c) }},
	{"value", func(c *schema.Column) bool {
		_, ok := c.LogicalType().(schema.JSONLogicalType)
		return c.PhysicalType() == parquet.Types.ByteArray && ok
	}},
	{"value_bin", func(c *schema.Column) bool {
		return c.PhysicalType() == parquet.Types.ByteArray && isNone(c.LogicalType())
	}},
}

// baseSchema is the Iceberg schema of every table before typed columns.
// CreateTable assigns fresh ids; these only make the schema well formed.
func baseSchema() *iceberg.Schema {
	return iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "offset", Type: iceberg.PrimitiveTypes.Int64, Required: true,
			Doc: "record offset, dense from 0 per stream"},
		iceberg.NestedField{ID: 2, Name: "ts", Type: iceberg.PrimitiveTypes.Timestamp, Required: true,
			Doc: "event time, UTC, microseconds (floor of ts_ns / 1000)"},
		iceberg.NestedField{ID: 3, Name: "ts_nanos", Type: iceberg.PrimitiveTypes.Int32, Required: true,
			Doc: "ts_ns - 1000 * ts: the nanoseconds below the microsecond"},
		iceberg.NestedField{ID: 4, Name: "key", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: 5, Name: "tags", Required: true,
			Type: &iceberg.ListType{ElementID: 8, Element: iceberg.PrimitiveTypes.String, ElementRequired: true}},
		iceberg.NestedField{ID: 6, Name: "value", Type: iceberg.PrimitiveTypes.String,
			Doc: "the value when it is valid UTF-8 JSON (exactly one of value, value_bin is set)"},
		iceberg.NestedField{ID: 7, Name: "value_bin", Type: iceberg.PrimitiveTypes.Binary,
			Doc: "the value's bytes otherwise"},
	)
}

// column is a typed (policy) column found in a file.
type column struct {
	name string
	typ  iceberg.Type
}

// dataFile is one segment's cold object, its footer read and checked.
type dataFile struct {
	seg   tiers.SegmentMeta
	path  string
	size  int64
	meta  *metadata.FileMetaData
	typed []column
}

// errLegacy marks a format-1 object: readable by tierd and by Parquet
// engines, but not describable by an Iceberg v2 table.
var errLegacy = errors.New("format-1 object (ts in nanoseconds, value unannotated binary)")

// readFooter reads and checks the footer of the segment's object: it must
// be a format-2 tierd file of exactly this segment with the format-2 base
// columns. cold/pqfile checks the footer and the tierd metadata first (the
// metadata checksum, the schema against tierd.columns) and gives the
// segment the file holds, whose digest must be the catalog's; arrow-go
// then parses the footer again for iceberg-go. errLegacy reports a
// format-1 file; fs.ErrNotExist a missing object; errBadFile a damaged or
// foreign one; other errors are the store's.
func readFooter(ctx context.Context, fio icebergio.IO, seg tiers.SegmentMeta, path string) (_ *dataFile, err error) {
	f, err := fio.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pr, err := pqfile.Open(ctx, f, st.Size(), path)
	var corrupt *tiers.CorruptionError
	switch {
	case errors.As(err, &corrupt):
		return nil, fmt.Errorf("%w: %w", errBadFile, err)
	case err != nil:
		return nil, err
	}
	got := pr.Meta()
	if got.Stream != seg.Stream || got.Base != seg.Base || got.Last != seg.Last || got.Count != seg.Count ||
		(!seg.Digest.IsZero() && got.Digest != seg.Digest) {
		return nil, fmt.Errorf("%w: it holds %s [%d, %d] (%d records, %s), the catalog says %s [%d, %d] (%d, %s)", errBadFile,
			got.Stream, got.Base, got.Last, got.Count, got.Digest, seg.Stream, seg.Base, seg.Last, seg.Count, seg.Digest)
	}
	// arrow-go is not hardened against hostile footers as pqfile is: a
	// panic in it is a bad file, never a crash.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: parquet footer: %v", errBadFile, r)
		}
	}()
	rdr, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("%w: parquet footer: %v", errBadFile, err)
	}
	meta := rdr.MetaData()
	rdr.Close()
	kv := meta.KeyValueMetadata()
	get := func(k string) string {
		if v := kv.FindValue(k); v != nil {
			return *v
		}
		return ""
	}
	switch v := get(metaFormatVersion); {
	case v == "1" || strings.HasPrefix(v, "1."):
		return nil, errLegacy
	case !strings.HasPrefix(v, "2."):
		return nil, fmt.Errorf("%w: %s %q, want 2.x", errBadFile, metaFormatVersion, v)
	}
	want := map[string]string{
		metaStream: seg.Stream,
		metaBase:   strconv.FormatUint(seg.Base, 10),
		metaLast:   strconv.FormatUint(seg.Last, 10),
		metaCount:  strconv.FormatUint(seg.Count, 10),
	}
	for k, v := range want {
		if got := get(k); got != v {
			return nil, fmt.Errorf("%w: %s is %q, the catalog says %q", errBadFile, k, got, v)
		}
	}
	if meta.NumRows != int64(seg.Count) {
		return nil, fmt.Errorf("%w: %d rows, the catalog says %d records", errBadFile, meta.NumRows, seg.Count)
	}
	sc := meta.Schema
	if sc.NumColumns() < len(baseColumns) {
		return nil, fmt.Errorf("%w: %d columns, want at least %d", errBadFile, sc.NumColumns(), len(baseColumns))
	}
	for i, b := range baseColumns {
		c := sc.Column(i)
		if c.Path() != b.path || !b.ok(c) {
			return nil, fmt.Errorf("%w: column %d is %s %s %s, not format 2's %s", errBadFile, i, c.Path(), c.PhysicalType(), c.LogicalType(), b.path)
		}
	}
	df := &dataFile{seg: seg, path: path, size: st.Size(), meta: meta}
	for i := len(baseColumns); i < sc.NumColumns(); i++ {
		c := sc.Column(i)
		typ, err := typedColumn(c)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadFile, err)
		}
		df.typed = append(df.typed, column{name: c.Path(), typ: typ})
	}
	return df, nil
}

// errBadFile marks an object that is not a publishable format-2 file of
// its segment.
var errBadFile = errors.New("not a sound format-2 file of this segment")

// typedColumn maps a typed column of a format-2 file to its Iceberg type
// (cold/colproj's types: string, int64, double, bool, timestamp, decimal).
func typedColumn(c *schema.Column) (iceberg.Type, error) {
	if strings.Contains(c.Path(), ".") || c.MaxDefinitionLevel() != 1 {
		return nil, fmt.Errorf("typed column %s is not an optional top-level column", c.Path())
	}
	lt := c.LogicalType()
	switch c.PhysicalType() {
	case parquet.Types.ByteArray:
		if isString(c) {
			return iceberg.PrimitiveTypes.String, nil
		}
	case parquet.Types.Int64:
		switch t := lt.(type) {
		case schema.DecimalLogicalType:
			if t.Precision() >= 1 && t.Precision() <= 18 && t.Scale() >= 0 && t.Scale() <= t.Precision() {
				return iceberg.DecimalTypeOf(int(t.Precision()), int(t.Scale())), nil
			}
		default:
			if isLocalMicros(c) {
				return iceberg.PrimitiveTypes.Timestamp, nil
			}
			if isInt(c, parquet.Types.Int64, 64) {
				return iceberg.PrimitiveTypes.Int64, nil
			}
		}
	case parquet.Types.Double:
		if isNone(lt) {
			return iceberg.PrimitiveTypes.Float64, nil
		}
	case parquet.Types.Boolean:
		if isNone(lt) {
			return iceberg.PrimitiveTypes.Bool, nil
		}
	}
	return nil, fmt.Errorf("typed column %s has type %s %s, which no policy column type writes", c.Path(), c.PhysicalType(), lt)
}

func isNone(lt schema.LogicalType) bool {
	switch lt.(type) {
	case nil, schema.NoLogicalType, *schema.NoLogicalType:
		return true
	}
	return false
}

func isString(c *schema.Column) bool {
	_, ok := c.LogicalType().(schema.StringLogicalType)
	return c.PhysicalType() == parquet.Types.ByteArray && ok
}

func isInt(c *schema.Column, pt parquet.Type, bits int8) bool {
	if c.PhysicalType() != pt {
		return false
	}
	if isNone(c.LogicalType()) {
		return true
	}
	t, ok := c.LogicalType().(schema.IntLogicalType)
	return ok && t.BitWidth() == bits && t.IsSigned()
}

func isLocalMicros(c *schema.Column) bool {
	t, ok := c.LogicalType().(schema.TimestampLogicalType)
	return c.PhysicalType() == parquet.Types.Int64 && ok && !t.IsAdjustedToUTC() && t.TimeUnit() == schema.TimeUnitMicros
}

// isNotFound reports a missing object through iceberg-go's FileIO.
func isNotFound(err error) bool { return errors.Is(err, fs.ErrNotExist) }
