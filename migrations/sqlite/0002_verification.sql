-- Client organizations, their Duo accounts and the PSA companies that map to them.
CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Duo credentials for one organization. Secret keys are sealed with the master key.
CREATE TABLE duo_accounts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id  INTEGER NOT NULL UNIQUE REFERENCES organizations(id),
    api_host         TEXT NOT NULL,
    auth_ikey        TEXT NOT NULL,
    auth_skey_sealed TEXT NOT NULL,
    admin_ikey       TEXT NOT NULL,
    admin_skey_sealed TEXT NOT NULL,
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- A PSA this deployment talks to. Settings are plain JSON; secrets are one sealed JSON object.
CREATE TABLE psa_connections (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    settings        TEXT NOT NULL,
    secrets_sealed  TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE company_mappings (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id    INTEGER NOT NULL REFERENCES psa_connections(id),
    psa_company_id   TEXT NOT NULL,
    organization_id  INTEGER NOT NULL REFERENCES organizations(id),
    UNIQUE (connection_id, psa_company_id)
);

-- Every inbound webhook delivery, stored before it is answered. The key de-duplicates.
CREATE TABLE inbound_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  INTEGER NOT NULL REFERENCES psa_connections(id),
    delivery_key   TEXT NOT NULL,
    ticket_id      TEXT NOT NULL,
    received_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (connection_id, delivery_key)
);

-- One verification case per ticket.
CREATE TABLE tickets (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id    INTEGER NOT NULL REFERENCES psa_connections(id),
    ticket_id        TEXT NOT NULL,
    state            TEXT NOT NULL,
    organization_id  INTEGER REFERENCES organizations(id),
    summary          TEXT,
    company_id       TEXT,
    contact_first    TEXT,
    contact_last     TEXT,
    contact_email    TEXT,
    problem          TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (connection_id, ticket_id)
);

-- Each push a technician asked for.
CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_ref       INTEGER NOT NULL REFERENCES tickets(id),
    technician_id    INTEGER REFERENCES users(id),
    technician_name  TEXT NOT NULL,
    state            TEXT NOT NULL,
    duo_user_id      TEXT,
    duo_username     TEXT,
    txid             TEXT,
    reason           TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    finished_at      TEXT
);
CREATE INDEX attempts_by_ticket ON attempts(ticket_ref);

-- Background work: ticket intake, push status polling and note posting. A job is claimed by
-- setting a lease; a lease that runs out (a stopped process) makes the job claimable again.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedupe_key    TEXT UNIQUE,
    run_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    leased_until  INTEGER,
    done          BOOLEAN NOT NULL DEFAULT FALSE,
    last_error    TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX jobs_due ON jobs(done, run_at);

-- Notes written to tickets, one row per note, marked posted once the PSA accepted it.
CREATE TABLE notes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_ref     INTEGER NOT NULL REFERENCES tickets(id),
    kind           TEXT NOT NULL,
    body           TEXT NOT NULL,
    psa_note_id    TEXT,
    posted_at      TEXT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Append-only record of verifications and admin changes.
CREATE TABLE audit_log (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,
    organization_id  INTEGER,
    ticket           TEXT,
    contact          TEXT,
    duo_user         TEXT,
    outcome          TEXT,
    txid             TEXT,
    detail           TEXT
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
