-- Cluster mode's sequencing state: the nodes and their epochs, each
-- stream's next offset, the journal objects and the ranges of offsets they
-- hold, the idempotent producers' last batches and the compaction jobs.
-- The segments of the catalog (catalog.Store) are in the next migration.

CREATE TABLE cluster_nodes (
    node_id         text PRIMARY KEY,
    -- Bumped by every start of the node: a commit checks it under a share
    -- lock, so a restarted node fences its dead predecessor at once.
    epoch           bigint NOT NULL,
    version         text NOT NULL,
    addr            text NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL,
    heartbeat_at    timestamptz NOT NULL,
    stopped_at      timestamptz,
    streams_written bigint NOT NULL DEFAULT 0,
    jobs_held       integer NOT NULL DEFAULT 0,
    cache_bytes     bigint NOT NULL DEFAULT 0
);

CREATE TABLE cluster_streams (
    stream      text PRIMARY KEY,
    -- One past the highest acknowledged offset; locked (FOR UPDATE) by the
    -- commit that assigns the next batch's offsets.
    next_offset bigint NOT NULL DEFAULT 0 CHECK (next_offset >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE journal_objects (
    key          text PRIMARY KEY,
    node_id      text NOT NULL,
    epoch        bigint NOT NULL,
    size         bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    -- journal_ranges rows that still point here; at 0 the object is
    -- released and garbage collection deletes it after cluster.gc_delay.
    live_ranges  integer NOT NULL CHECK (live_ranges >= 0),
    released_at  timestamptz
);
CREATE INDEX journal_objects_released ON journal_objects (released_at) WHERE released_at IS NOT NULL;

CREATE TABLE journal_ranges (
    stream       text NOT NULL,
    first_offset bigint NOT NULL,
    last_offset  bigint NOT NULL CHECK (last_offset >= first_offset),
    object_key   text NOT NULL REFERENCES journal_objects (key),
    byte_off     bigint NOT NULL,
    byte_len     bigint NOT NULL,
    min_ts       bigint NOT NULL,
    max_ts       bigint NOT NULL,
    -- The records' tiers.Record.Size() total: segment.max_bytes counts it.
    bytes        bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, first_offset)
);
CREATE INDEX journal_ranges_object ON journal_ranges (object_key);

CREATE TABLE cluster_producers (
    stream       text NOT NULL,
    producer_id  bytea NOT NULL,
    seq          bigint NOT NULL,
    first_offset bigint NOT NULL,
    last_offset  bigint NOT NULL,
    count        integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, producer_id)
);

CREATE TABLE compaction_jobs (
    stream      text NOT NULL,
    base        bigint NOT NULL,
    last_offset bigint NOT NULL CHECK (last_offset >= base),
    owner       text,
    owner_epoch bigint,
    lease_until timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, base)
);

-- compactor: at most one open compaction job per stream. The planner
-- checks it under the stream's row lock; the index makes it a rule the
-- database keeps whatever a planner does.
CREATE UNIQUE INDEX compaction_jobs_one_per_stream ON compaction_jobs (stream);
