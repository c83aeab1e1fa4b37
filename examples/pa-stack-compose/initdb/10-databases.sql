-- Runs once, when the postgres container initialises an empty pgdata volume (as POSTGRES_USER).
-- The assistant's database is POSTGRES_DB; the automations service gets its own.
CREATE DATABASE automations;
