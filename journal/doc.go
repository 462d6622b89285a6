// Package journal is the byte format of a cluster-mode journal object: the
// one object a node PUTs to the bucket at every flush, holding the batches
// it collected for any number of streams (docs/format/journal.md).
//
// Offsets are not in the object: PostgreSQL assigns them after the PUT. The
// catalog row of a batch keeps the object key and the block's byte range,
// and a reader fetches exactly that range and decodes it with DecodeBlock,
// so every block is self-contained: its own magic, version, length, its
// position in the object and a CRC32C over all of it. The object adds a
// header (node, epoch, creation time) and a footer (block count, a CRC32C
// chain of the header's and every block's checksums) that verify and
// garbage collection check with DecodeObject.
//
// Writer builds an object on the ingest path and is reused with Reset, so
// a node's batcher does not allocate in the steady state. Every damage a
// decoder finds is a *tiers.CorruptionError; it never panics and never
// returns a record the writer did not write.
package journal
