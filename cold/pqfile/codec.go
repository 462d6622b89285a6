package pqfile

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// zstdWindow is the encoder's window. Pages are cut at pageBufferBytes, so
// matches farther back than this would be across pages, where zstd cannot
// reach anyway; parquet-go's own codec uses klauspost's 8 MiB default, which
// costs 16–32 MiB of history per encoder for nothing.
const zstdWindow = 1 << 20

// zstdCodec compresses pages for one Write: zstd frames (Parquet's ZSTD
// codec, so any reader decodes them) from one encoder with a small window.
// Reading goes through parquet-go's registered ZSTD codec, not this one.
type zstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder // made on first use; Write never decodes today
}

// newZstdCodec returns a codec at a klauspost encoder level.
func newZstdCodec(level zstd.EncoderLevel) (*zstdCodec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithZeroFrames(true),
		// Parquet pages carry their own CRC32 in the page header.
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, fmt.Errorf("pqfile: zstd encoder: %w", err)
	}
	return &zstdCodec{enc: enc}, nil
}

// String names the codec as parquet-go does.
func (c *zstdCodec) String() string { return "ZSTD" }

// CompressionCodec is the codec id written in column chunk metadata.
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

// Encode compresses src into dst.
func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

// Decode decompresses src into dst.
func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	if c.dec == nil {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("pqfile: zstd decoder: %w", err)
		}
		c.dec = d
	}
	return c.dec.DecodeAll(src, dst[:0])
}

// Close releases the encoder and decoder.
func (c *zstdCodec) Close() error {
	if c.dec != nil {
		c.dec.Close()
	}
	return c.enc.Close()
}
