-- The users table: the system of record. Forward-only: there is no down
-- migration, because undoing this one would drop every user.
CREATE TABLE users (
    id             bigint PRIMARY KEY,
    first_name     text NOT NULL,
    last_name      text NOT NULL,
    -- The names lower-cased by the application (Go's strings.ToLower, the
    -- same function that lower-cases a filter), in byte order: the name
    -- filters are prefix matches on these, served by btree indexes.
    first_name_lc  text COLLATE "C" NOT NULL,
    last_name_lc   text COLLATE "C" NOT NULL,
    -- Sealed ciphertext "<keyid>:<base64>", never plaintext.
    email_address  text NOT NULL,
    -- Keyed hash of the plaintext email: tells whether an email changed
    -- without decrypting (each sealing uses a fresh nonce).
    email_hash     bytea NOT NULL,
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz,
    merged_at      timestamptz,
    -- No foreign key: a parent may arrive later than its children, or never.
    parent_user_id bigint,
    -- The version (viswals.Version) of the row that wrote this: a write
    -- applies only when it is newer, whatever order batches commit in.
    version_load   bigint NOT NULL,
    version_line   bigint NOT NULL,
    -- The transaction that last changed the content: the changefeed orders
    -- by (changed_xid, id). A write that only bumps the version keeps it.
    changed_xid    xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- The changefeed reads in (changed_xid, id) order from a position.
CREATE INDEX users_changed ON users (changed_xid, id);
-- Prefix filters; id second so a page of one exact name is already in id order.
CREATE INDEX users_first_name ON users (first_name_lc, id);
CREATE INDEX users_last_name ON users (last_name_lc, id);
