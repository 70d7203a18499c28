-- Client organizations, their Duo accounts and the PSA companies that map to them.
CREATE TABLE organizations (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);
CREATE UNIQUE INDEX organizations_name ON organizations (lower(name));

-- Duo credentials for one organization. Secret keys are sealed with the master key.
CREATE TABLE duo_accounts (
    id                BIGSERIAL PRIMARY KEY,
    organization_id   BIGINT NOT NULL UNIQUE REFERENCES organizations(id),
    api_host          TEXT NOT NULL,
    auth_ikey         TEXT NOT NULL,
    auth_skey_sealed  TEXT NOT NULL,
    admin_ikey        TEXT NOT NULL,
    admin_skey_sealed TEXT NOT NULL,
    updated_at        TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);

-- A PSA this deployment talks to. Settings are plain JSON; secrets are one sealed JSON object.
CREATE TABLE psa_connections (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    settings        TEXT NOT NULL,
    secrets_sealed  TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);
CREATE UNIQUE INDEX psa_connections_name ON psa_connections (lower(name));

CREATE TABLE company_mappings (
    id               BIGSERIAL PRIMARY KEY,
    connection_id    BIGINT NOT NULL REFERENCES psa_connections(id),
    psa_company_id   TEXT NOT NULL,
    organization_id  BIGINT NOT NULL REFERENCES organizations(id),
    UNIQUE (connection_id, psa_company_id)
);

-- Every inbound webhook delivery, stored before it is answered. The key de-duplicates.
CREATE TABLE inbound_events (
    id             BIGSERIAL PRIMARY KEY,
    connection_id  BIGINT NOT NULL REFERENCES psa_connections(id),
    delivery_key   TEXT NOT NULL,
    ticket_id      TEXT NOT NULL,
    received_at    TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    UNIQUE (connection_id, delivery_key)
);

-- One verification case per ticket.
CREATE TABLE tickets (
    id               BIGSERIAL PRIMARY KEY,
    connection_id    BIGINT NOT NULL REFERENCES psa_connections(id),
    ticket_id        TEXT NOT NULL,
    state            TEXT NOT NULL,
    organization_id  BIGINT REFERENCES organizations(id),
    summary          TEXT,
    company_id       TEXT,
    contact_first    TEXT,
    contact_last     TEXT,
    contact_email    TEXT,
    problem          TEXT,
    created_at       TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    updated_at       TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    UNIQUE (connection_id, ticket_id)
);

-- Each push a technician asked for.
CREATE TABLE attempts (
    id               BIGSERIAL PRIMARY KEY,
    ticket_ref       BIGINT NOT NULL REFERENCES tickets(id),
    technician_id    BIGINT REFERENCES users(id),
    technician_name  TEXT NOT NULL,
    state            TEXT NOT NULL,
    duo_user_id      TEXT,
    duo_username     TEXT,
    txid             TEXT,
    reason           TEXT,
    created_at       TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    finished_at      TEXT
);
CREATE INDEX attempts_by_ticket ON attempts(ticket_ref);

-- Background work: ticket intake, push status polling and note posting. A replica claims a
-- job by setting a lease under FOR UPDATE SKIP LOCKED; a lease that runs out (a stopped
-- replica) makes the job claimable by any other.
CREATE TABLE jobs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedupe_key    TEXT UNIQUE,
    run_at        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    leased_until  BIGINT,
    done          BOOLEAN NOT NULL DEFAULT FALSE,
    last_error    TEXT,
    created_at    TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);
CREATE INDEX jobs_due ON jobs(run_at, id) WHERE NOT done;

-- Notes written to tickets, one row per note, marked posted once the PSA accepted it.
CREATE TABLE notes (
    id             BIGSERIAL PRIMARY KEY,
    ticket_ref     BIGINT NOT NULL REFERENCES tickets(id),
    kind           TEXT NOT NULL,
    body           TEXT NOT NULL,
    psa_note_id    TEXT,
    posted_at      TEXT,
    created_at     TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);

-- Append-only record of verifications and admin changes.
CREATE TABLE audit_log (
    id               BIGSERIAL PRIMARY KEY,
    at               TEXT NOT NULL DEFAULT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,
    organization_id  BIGINT,
    ticket           TEXT,
    contact          TEXT,
    duo_user         TEXT,
    outcome          TEXT,
    txid             TEXT,
    detail           TEXT
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
