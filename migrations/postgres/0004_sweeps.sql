-- How far the scheduled sweep has listed each PSA connection's new tickets: tickets created
-- after `swept_until` (milliseconds since 1970, deskproof's clock) are listed next time.
CREATE TABLE psa_sweeps (
    connection_id  BIGINT PRIMARY KEY REFERENCES psa_connections(id),
    swept_until    BIGINT NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);
