-- How far the scheduled sweep has listed each PSA connection's new tickets: tickets created
-- after `swept_until` (milliseconds since 1970, deskproof's clock) are listed next time.
CREATE TABLE psa_sweeps (
    connection_id  INTEGER PRIMARY KEY REFERENCES psa_connections(id),
    swept_until    BIGINT NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
