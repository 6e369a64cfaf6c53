-- What storing users in the project's table costs Postgres, index by index:
-- COPY of the same rows into variants of the table, one stream, text format.
-- docs/benchmarks.md ("Second round") has the figures.
--
--   go run ./cmd/gencsv -rows 1000000 > /tmp/users.csv
--   psql -X -v csv=/tmp/users.csv -f bench/sql/table-cost.sql postgres://postgres@127.0.0.1/postgres
--
-- It makes and drops a database named viswals_table_cost. The server reads
-- the CSV and writes two files to /tmp (removed at the end): run it against
-- a Postgres on this machine, as a superuser.
\set ON_ERROR_STOP on
DROP DATABASE IF EXISTS viswals_table_cost;
CREATE DATABASE viswals_table_cost;
\c viswals_table_cost
\set raw /tmp/viswals_table_cost.raw.tsv
\set stored /tmp/viswals_table_cost.stored.tsv

CREATE TABLE raw (id bigint, first_name text, last_name text, email text, created bigint, deleted bigint, merged bigint, parent bigint);
COPY raw FROM :'csv' WITH (FORMAT csv, HEADER true);
-- The stored shape: lower-cased names, an email sealed the size the
-- consumer's is ("v1:" + base64 of nonce, ciphertext and tag), a 32-byte
-- email hash, times, version.
CREATE TABLE stored AS SELECT id, first_name, last_name,
  lower(first_name) AS first_name_lc, lower(last_name) AS last_name_lc,
  'v1:' || encode(substr(sha512(email::bytea) || sha512(email::bytea), 1, 12 + length(email) + 16), 'base64') AS email_address,
  sha256(email::bytea) AS email_hash,
  to_timestamp(created / 1000.0) AS created_at,
  to_timestamp(nullif(deleted, -1) / 1000.0) AS deleted_at,
  to_timestamp(nullif(merged, -1) / 1000.0) AS merged_at,
  nullif(parent, -1) AS parent_user_id,
  1::bigint AS version_load, id AS version_line
FROM raw;
COPY raw TO :'raw';
COPY stored TO :'stored';

CREATE TABLE yardstick (LIKE raw, PRIMARY KEY (id));
CREATE TABLE pk_only (LIKE stored, PRIMARY KEY (id));
CREATE TABLE with_changefeed (LIKE stored, PRIMARY KEY (id));
ALTER TABLE with_changefeed ADD changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX ON with_changefeed (changed_xid, id);
CREATE TABLE with_names (LIKE stored, PRIMARY KEY (id));
ALTER TABLE with_names ALTER first_name_lc TYPE text COLLATE "C", ALTER last_name_lc TYPE text COLLATE "C";
CREATE INDEX ON with_names (first_name_lc, id);
CREATE INDEX ON with_names (last_name_lc, id);
CREATE TABLE users (LIKE with_names INCLUDING ALL);
ALTER TABLE users ADD changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX ON users (changed_xid, id);

\timing on
CHECKPOINT;
\echo yardstick: the CSV columns, primary key
COPY yardstick FROM :'raw';
CHECKPOINT;
\echo the stored columns, primary key
COPY pk_only FROM :'stored';
CHECKPOINT;
\echo + the changefeed column and index
COPY with_changefeed (id, first_name, last_name, first_name_lc, last_name_lc, email_address, email_hash, created_at, deleted_at, merged_at, parent_user_id, version_load, version_line) FROM :'stored';
CHECKPOINT;
\echo + the two name indexes (no changefeed)
COPY with_names FROM :'stored';
CHECKPOINT;
\echo all four indexes: the users table
COPY users (id, first_name, last_name, first_name_lc, last_name_lc, email_address, email_hash, created_at, deleted_at, merged_at, parent_user_id, version_load, version_line) FROM :'stored';
\timing off

\c postgres
DROP DATABASE viswals_table_cost;
\! rm -f /tmp/viswals_table_cost.raw.tsv /tmp/viswals_table_cost.stored.tsv
