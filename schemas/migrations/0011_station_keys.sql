-- HJ 212-2025 loggers encrypt their data areas with SM4 (docs/data-loggers.md#encrypted-packets):
-- the station's key, 16 bytes as 32 lower-case hex digits. A secret like pw: a column of its
-- own, never in attrs (which the API serves).
ALTER TABLE stations ADD COLUMN sm4_key text CHECK (sm4_key ~ '^[0-9a-f]{32}$');
