-- Push policy: each attempt remembers the organization and the contact it was for, so the
-- limits per contact can be counted across tickets, and the code the caller reads back.
ALTER TABLE attempts ADD COLUMN organization_id INTEGER REFERENCES organizations(id);
ALTER TABLE attempts ADD COLUMN contact_key TEXT;
ALTER TABLE attempts ADD COLUMN caller_code TEXT;
-- For a refused attempt: when (Unix seconds) the policy allows the next push, if ever.
ALTER TABLE attempts ADD COLUMN next_push_at BIGINT;
CREATE INDEX attempts_by_contact ON attempts(organization_id, contact_key);
CREATE INDEX attempts_by_technician ON attempts(technician_id);

-- A verification link that started a push is used up; its page then offers a fresh link.
-- Only a digest of the link is kept.
CREATE TABLE used_links (
    token_digest  TEXT PRIMARY KEY,
    case_id       INTEGER NOT NULL REFERENCES tickets(id),
    attempt_id    INTEGER NOT NULL REFERENCES attempts(id),
    used_at       BIGINT NOT NULL
);
