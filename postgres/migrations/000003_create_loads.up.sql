-- Loads: one row per producer run (its id is the version load of its rows),
-- with the producer's summary and the consumer's counts by outcome.
CREATE TABLE loads (
    id              bigint PRIMARY KEY,
    received        bigint NOT NULL DEFAULT 0,
    inserted        bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    unchanged       bigint NOT NULL DEFAULT 0,
    dead_lettered   bigint NOT NULL DEFAULT 0,
    first_commit_at timestamptz,
    last_commit_at  timestamptz,
    -- The producer's summary: null until its last message arrives.
    read_rows       bigint,
    published_rows  bigint,
    rejected_rows   bigint,
    summary_at      timestamptz
);

-- The messages already counted into a load, so that a redelivered message
-- is counted once: its row is inserted in the transaction that commits
-- its users.
CREATE TABLE load_messages (
    load_id bigint NOT NULL,
    message text NOT NULL,
    PRIMARY KEY (load_id, message)
);
