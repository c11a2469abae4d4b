/*
 * ouro--0.1.0--0.2.0.sql -- upgrade script of the PostgreSQL extension ouro, 0.1.0 to 0.2.0.
 *
 * Every change this version makes to the catalog, in the order a fresh install of
 * ouro--0.2.0.sql has it: after ALTER EXTENSION ouro UPDATE TO '0.2.0', the schema
 * equals a fresh 0.2.0 install.
 */

-- complain if the script is sourced in psql rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION ouro UPDATE TO '0.2.0'" to load this file. \quit

COMMENT ON FUNCTION ouro_version() IS 'Version of the ouro runtime, e.g. 0.2.0.';
