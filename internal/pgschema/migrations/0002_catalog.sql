-- The catalog of cluster mode (catalog.Store, implemented by
-- catalog/pgcatalog): each stream's totals and watermarks, its segments,
-- the move intents and each segment's last failure. One column per field,
-- so that operators can query them; the CHECKs hold the invariants a row
-- must keep whatever wrote it (pgcatalog checks every row it reads again
-- and reports a damaged one as a corruption error, never a guess).
--
-- Offsets are bigint: the catalog refuses offsets past 2^63-2, like the
-- cluster tables of 0001. Stream names sort as bytes (COLLATE "C"), the
-- order catalog.Store promises, whatever the database's locale.

CREATE TABLE catalog_streams (
    stream        text COLLATE "C" PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    -- Totals of the stream's catalogued segments, kept by every write
    -- that adds, replaces or forgets one.
    segments      bigint NOT NULL DEFAULT 0 CHECK (segments >= 0),
    records       bigint NOT NULL DEFAULT 0 CHECK (records >= segments),
    bytes         bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    -- One past the highest offset ever catalogued; never moves back.
    next_offset   bigint NOT NULL DEFAULT 0,
    -- The retention watermark: offsets below it were deleted (or are
    -- tombstoned) by retention; never moves back.
    retained_from bigint NOT NULL DEFAULT 0,
    CONSTRAINT catalog_streams_watermark CHECK (0 <= retained_from AND retained_from <= next_offset)
);

CREATE TABLE catalog_segments (
    stream      text COLLATE "C" NOT NULL REFERENCES catalog_streams (stream),
    base        bigint NOT NULL,
    last_offset bigint NOT NULL,
    count       bigint NOT NULL,
    -- Encoded record bytes (tiers.SegmentMeta.Bytes).
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    min_ts      bigint NOT NULL,
    max_ts      bigint NOT NULL,
    sealed_at   timestamptz NOT NULL,
    -- SHA-256 of the records (tiers.Digest).
    digest      bytea NOT NULL CHECK (octet_length(digest) = 32),
    -- The durable placements, in the order warm, cold; hot residency is
    -- never stored.
    placements  text[] NOT NULL,
    -- Size of the cold object; 0 without a cold placement (or unknown).
    cold_bytes  bigint NOT NULL CHECK (cold_bytes >= 0),
    -- When deletion by retention began; NULL while the segment is live.
    tombstoned  timestamptz,
    PRIMARY KEY (stream, base),
    CONSTRAINT catalog_segments_dense CHECK (0 <= base AND base <= last_offset AND count = last_offset - base + 1),
    CONSTRAINT catalog_segments_placements CHECK (
        placements IN ('{warm}', '{cold}', '{warm,cold}')
        AND (cold_bytes = 0 OR 'cold' = ANY (placements))),
    CONSTRAINT catalog_segments_times CHECK (min_ts <= max_ts AND (tombstoned IS NULL OR tombstoned >= sealed_at))
);

-- A move of one segment in progress (catalog.Intent): at most one per
-- segment. It may outlive its segment (recovery still needs its key).
CREATE TABLE catalog_intents (
    stream     text COLLATE "C" NOT NULL,
    base       bigint NOT NULL CHECK (base >= 0),
    kind       text NOT NULL CHECK (octet_length(kind) BETWEEN 1 AND 64),
    key        text NOT NULL CHECK (octet_length(key) <= 4096),
    started_at timestamptz NOT NULL,
    attempts   integer NOT NULL CHECK (attempts >= 0),
    last_error text NOT NULL CHECK (octet_length(last_error) <= 4096),
    PRIMARY KEY (stream, base)
);

-- The last failure of a move of one segment since its last success
-- (catalog.Failure); it needs no segment (a move may fail after its
-- segment went).
CREATE TABLE catalog_failures (
    stream    text COLLATE "C" NOT NULL,
    base      bigint NOT NULL CHECK (base >= 0),
    kind      text NOT NULL CHECK (octet_length(kind) <= 64),
    error     text NOT NULL CHECK (octet_length(error) <= 4096),
    at        timestamptz NOT NULL,
    attempts  integer NOT NULL CHECK (attempts >= 1),
    -- A destructive step refused because nothing justified it.
    refused   boolean NOT NULL,
    PRIMARY KEY (stream, base)
);
