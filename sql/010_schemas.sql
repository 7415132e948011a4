-- The five schemas of the platform. Roles (owner, writer, reader) are created by the stack before
-- migrations run, with passwords from the environment; grants are in 090_grants.sql.
CREATE SCHEMA IF NOT EXISTS ref;
CREATE SCHEMA IF NOT EXISTS config;
CREATE SCHEMA IF NOT EXISTS state;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS analytics;
