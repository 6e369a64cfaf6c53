#!/bin/sh
# Run once by the postgres image, when its volume is first set up: the
# consumer's own login role, owning the database viswals and nothing else,
# with the password VISWALS_DB_PASSWORD. psql passes the password as a
# variable, quoted by psql itself.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$VISWALS_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE viswals LOGIN PASSWORD :'pw';
CREATE DATABASE viswals OWNER viswals;
SQL
