-- One replica sweeps a connection per interval: the sweep is claimed by `claimed_by` until
-- `claimed_until` (milliseconds since 1970, deskproof's clock).
ALTER TABLE psa_sweeps ADD COLUMN claimed_by TEXT;
ALTER TABLE psa_sweeps ADD COLUMN claimed_until BIGINT;

-- Connections now get their watermark when they are created. One never swept yet starts at
-- its creation, but no more than a day back, so enabling the sweep on an old connection does
-- not take in its whole history.
INSERT INTO psa_sweeps (connection_id, swept_until)
SELECT id, GREATEST(
    (EXTRACT(EPOCH FROM created_at::timestamptz) * 1000)::BIGINT,
    (EXTRACT(EPOCH FROM now() - INTERVAL '1 day') * 1000)::BIGINT
)
FROM psa_connections
WHERE id NOT IN (SELECT connection_id FROM psa_sweeps);
