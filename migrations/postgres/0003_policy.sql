-- Verification policy: deployment-wide defaults in one row, overrides per organization.
-- Both hold a JSON object of the settings that were set; anything absent falls back.
CREATE TABLE policy_defaults (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    settings  TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO policy_defaults (id, settings) VALUES (1, '{}');

ALTER TABLE organizations ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
