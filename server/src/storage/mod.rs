//! Everything deskproof keeps: one [`Storage`] trait, one implementation per database.
use std::sync::Arc;

use app::model::Role;

use crate::policy::PolicySettings;
use crate::verify::ports::CallerCodeVia;
use crate::verify::rules::{PushLimits, Refusal};

mod sql;

pub use sql::{Dialect, SqlStorage};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("unsupported database URL {0:?}: use sqlite://path or postgres://user@host/database")]
    UnsupportedUrl(String),
    #[error("stored {0} could not be read")]
    Corrupt(&'static str),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A local account: a technician or an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A cheap query proving the database answers.
    async fn ping(&self) -> Result<(), StorageError>;
    /// Copies SQLite's write-ahead log into the database file, as far as readers allow;
    /// `None` for a database that manages this itself (PostgreSQL).
    async fn checkpoint(&self) -> Result<Option<WalCheckpoint>, StorageError>;

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StorageError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StorageError>;
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StorageError>;
    async fn set_password(&self, id: i64, password_hash: &str) -> Result<(), StorageError>;

    // Organizations, Duo accounts, PSA connections and company mappings.
    async fn create_organization(&self, name: &str) -> Result<i64, StorageError>;
    async fn organization(&self, id: i64) -> Result<Option<Organization>, StorageError>;
    async fn save_duo_account(&self, account: &DuoAccountRow) -> Result<(), StorageError>;
    async fn duo_account(
        &self,
        organization_id: i64,
    ) -> Result<Option<DuoAccountRow>, StorageError>;
    /// Stores a new connection together with its first sweep watermark (now), so the sweep
    /// lists every ticket created from then on.
    async fn create_psa_connection(&self, conn: &NewPsaConnection) -> Result<i64, StorageError>;
    async fn psa_connection(&self, id: i64) -> Result<Option<PsaConnectionRow>, StorageError>;
    async fn psa_connections(&self) -> Result<Vec<PsaConnectionRow>, StorageError>;
    async fn map_company(
        &self,
        connection_id: i64,
        psa_company_id: &str,
        organization_id: i64,
    ) -> Result<(), StorageError>;
    async fn organization_for_company(
        &self,
        connection_id: i64,
        psa_company_id: &str,
    ) -> Result<Option<i64>, StorageError>;

    // Policy: `None` is the deployment-wide defaults, `Some(id)` one organization's overrides.
    async fn policy_settings(
        &self,
        organization_id: Option<i64>,
    ) -> Result<PolicySettings, StorageError>;
    async fn save_policy_settings(
        &self,
        organization_id: Option<i64>,
        settings: &PolicySettings,
    ) -> Result<(), StorageError>;

    /// Stores an inbound delivery, its ticket case and the intake job in one transaction.
    /// Returns `false` when this delivery was stored before (nothing new is written).
    async fn record_delivery(
        &self,
        connection_id: i64,
        delivery_key: &str,
        ticket_id: &str,
        now: i64,
    ) -> Result<bool, StorageError>;
    async fn ticket_case(&self, id: i64) -> Result<Option<TicketCase>, StorageError>;

    /// Where the scheduled sweep of a PSA connection got to: the time (milliseconds since
    /// 1970) up to which its new tickets were listed. A connection gets its first watermark,
    /// the time it was created, together with the connection itself.
    async fn sweep_watermark(&self, connection_id: i64) -> Result<Option<i64>, StorageError>;
    /// Claims the next sweep of a connection for `owner` until `claimed_until`, unless a
    /// claim (of any owner) still runs at `now`: then nothing is written and the answer is
    /// `None`. Claimed, the answer is the watermark to list from. Two callers, in one process
    /// or in replicas sharing the database, never both get a claim at once. A connection
    /// without a watermark gets `now`.
    async fn claim_sweep(
        &self,
        connection_id: i64,
        owner: &str,
        now: i64,
        claimed_until: i64,
    ) -> Result<Option<i64>, StorageError>;
    /// Moves the watermark of a connection forward to `swept_until`; a watermark already
    /// later stays (a slower sweep finishing last never moves it back). Called only after
    /// every ticket listed up to `swept_until` went through [`Storage::record_delivery`], so a
    /// failed sweep is repeated from the old watermark.
    async fn save_sweep_watermark(
        &self,
        connection_id: i64,
        swept_until: i64,
    ) -> Result<(), StorageError>;
    /// The ticket case of one PSA ticket on one connection (there is at most one), or `None`
    /// when deskproof has not taken that ticket in.
    async fn ticket_case_for_ticket(
        &self,
        connection_id: i64,
        ticket_id: &str,
    ) -> Result<Option<TicketCase>, StorageError>;
    /// Saves the case and queues the note its new state calls for, in one transaction, so a
    /// stop between the two can never leave a state change without its note.
    async fn update_ticket_case(
        &self,
        case: &TicketCase,
        note: Option<&NewNote>,
    ) -> Result<(), StorageError>;

    /// Creates an attempt unless the case already has an open one (`matching` or `pushed`):
    /// then nothing is written and the result is [`StorageError::Conflict`]. The check and the
    /// insert are one statement, so two requests at the same moment cannot both create one.
    /// An attempt still `matching` whose lease ran out (or, without a lease, after ten minutes)
    /// was interrupted by a stop: it is marked `failed` first, so it cannot block the ticket.
    async fn create_attempt(&self, attempt: &NewAttempt) -> Result<i64, StorageError>;
    async fn attempt(&self, id: i64) -> Result<Option<Attempt>, StorageError>;
    async fn attempts_for_case(&self, case_id: i64) -> Result<Vec<Attempt>, StorageError>;
    /// Moves an attempt from `from` to the attempt's state (with its Duo user, transaction id,
    /// push kind, caller code, reason and end) and writes `effects` in the same transaction.
    /// False, with nothing written, when the attempt was no longer in `from`.
    async fn transition_attempt(
        &self,
        attempt: &Attempt,
        from: &str,
        effects: Effects<'_>,
    ) -> Result<bool, StorageError>;
    /// Extends the lease of an attempt still `matching` to `until` (milliseconds since 1970).
    /// False when it is no longer `matching`.
    async fn renew_matching(&self, attempt_id: i64, until: i64) -> Result<bool, StorageError>;
    async fn note(&self, id: i64) -> Result<Option<NoteRow>, StorageError>;
    async fn notes_for_case(&self, case_id: i64) -> Result<Vec<NoteRow>, StorageError>;
    async fn mark_note_posted(&self, id: i64, psa_note_id: &str) -> Result<(), StorageError>;
    /// Records that a post of the note is about to be sent to the PSA.
    async fn start_note_post(&self, id: i64) -> Result<(), StorageError>;

    async fn enqueue_job(&self, job: &NewJob) -> Result<(), StorageError>;
    /// Takes the next due job and leases it to `owner` until `lease_until`. Two callers, in
    /// one process or in several sharing the database, never get the same job at once.
    async fn claim_job(
        &self,
        now: i64,
        lease_until: i64,
        owner: &str,
        lane: Lane,
    ) -> Result<Option<Job>, StorageError>;
    /// Marks a job done if `owner` still holds its lease; false when the lease ran out and
    /// another process took the job (the result is then that process's to record).
    async fn finish_job(&self, id: i64, owner: &str) -> Result<bool, StorageError>;
    /// Puts a job back to run at `run_at`, if `owner` still holds its lease (as `finish_job`).
    async fn retry_job(
        &self,
        id: i64,
        owner: &str,
        run_at: i64,
        error: &str,
    ) -> Result<bool, StorageError>;
    /// Ends the leases `owner` holds, or with `None` every lease left by an earlier run of a
    /// single-process (SQLite) deployment; on a shared PostgreSQL, `None` ends none, as other
    /// replicas' leases are live.
    async fn release_leases(&self, owner: Option<&str>) -> Result<(), StorageError>;

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StorageError>;
    async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StorageError>;

    // Administration. Every change below writes its `audit` entry in the same transaction as
    // the change itself: either both are stored or neither is.

    /// Every organization, ordered by name.
    async fn organizations(&self) -> Result<Vec<Organization>, StorageError>;
    /// Creates an organization (`id` `None`) or renames one. Names are unique regardless of
    /// case: a taken name is [`StorageError::Conflict`]; an unknown `id` is
    /// [`StorageError::NotFound`]. Returns the organization's id.
    async fn save_organization(
        &self,
        id: Option<i64>,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<i64, StorageError>;
    /// Every company mapping with the names of its connection and organization, ordered by
    /// connection, then company id.
    async fn company_mappings(&self) -> Result<Vec<CompanyMappingRow>, StorageError>;
    /// Maps a PSA company to an organization, replacing an existing mapping of that company on
    /// that connection. An unknown connection or organization is [`StorageError::NotFound`].
    async fn save_company_mapping(
        &self,
        connection_id: i64,
        psa_company_id: &str,
        organization_id: i64,
        audit: &AuditEntry,
    ) -> Result<(), StorageError>;
    /// Removes the mapping of a PSA company on a connection. Returns the organization it was
    /// mapped to, or `None` (and writes no audit entry) when there was no such mapping.
    async fn remove_company_mapping(
        &self,
        connection_id: i64,
        psa_company_id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<i64>, StorageError>;
    /// Inserts or replaces the Duo account of `account.organization_id` (secrets already
    /// sealed). An unknown organization is [`StorageError::NotFound`].
    async fn save_duo_account_audited(
        &self,
        account: &DuoAccountRow,
        audit: &AuditEntry,
    ) -> Result<(), StorageError>;
    /// Creates a PSA connection (`id` `None`, with its first sweep watermark as in
    /// [`Storage::create_psa_connection`]) or replaces the name, settings and sealed secrets of
    /// an existing one; its kind never changes. A taken name (case-insensitive) is
    /// [`StorageError::Conflict`]; an unknown `id` or a different kind is
    /// [`StorageError::NotFound`]. Returns the connection's id.
    async fn save_psa_connection(
        &self,
        id: Option<i64>,
        conn: &NewPsaConnection,
        audit: &AuditEntry,
    ) -> Result<i64, StorageError>;
    /// [`Storage::save_policy_settings`] together with its audit entry.
    async fn save_policy_settings_audited(
        &self,
        organization_id: Option<i64>,
        settings: &PolicySettings,
        audit: &AuditEntry,
    ) -> Result<(), StorageError>;
    /// Every local account, ordered by username.
    async fn users(&self) -> Result<Vec<UserRecord>, StorageError>;
    /// [`Storage::create_user`] together with its audit entry.
    async fn create_user_audited(
        &self,
        user: NewUser,
        audit: &AuditEntry,
    ) -> Result<UserRecord, StorageError>;
    /// Changes what is `Some` of an account: disabled flag and/or password hash. An unknown
    /// `id` is [`StorageError::NotFound`].
    async fn update_user(
        &self,
        id: i64,
        disabled: Option<bool>,
        password_hash: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StorageError>;
    /// Audit entries matching every set field of `filter`, newest first, at most
    /// `filter.limit` (oldest first when `filter.oldest_first`).
    async fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StorageError>;
    /// How many audit entries match `filter`, ignoring its limit and paging.
    async fn count_audit(&self, filter: &AuditFilter) -> Result<i64, StorageError>;
    /// Replaces every sealed secret (Duo secret keys, MSP parents' Accounts API secret keys, PSA
    /// connection secrets) with what
    /// `reseal` returns for it, and appends `audit`, all in one transaction. When `reseal`
    /// fails for any value nothing is written and the result is
    /// [`StorageError::Corrupt`]. Returns how many values were re-sealed.
    async fn reseal_secrets(
        &self,
        reseal: &(dyn for<'s> Fn(&'s str) -> Option<String> + Send + Sync),
        audit: &AuditEntry,
    ) -> Result<usize, StorageError>;

    // Push policy: the race-free check-and-insert and what the verification page reads.

    /// Decides one push request for a case, atomically with respect to every other call:
    /// - when the case has an open attempt (`matching` or `pushed`), nothing is written and
    ///   [`PushGrant::Open`] names it (an attempt `matching` for over ten minutes is first
    ///   marked `failed`, as in [`Storage::create_attempt`]);
    /// - otherwise the push history of the claim's contact (within its organization), of the
    ///   case and of the technician (by `technician_id`, or by `technician_name` among
    ///   attempts without one when it is `None`) is read and checked with
    ///   [`crate::verify::rules::check`];
    ///   when it passes, an attempt in `attempt.state` is inserted with the claim's
    ///   organization, contact key and caller code ([`PushGrant::Created`]); when it fails, a
    ///   finished `refused` attempt is inserted with the refusal's reason and `next_push_at`
    ///   ([`PushGrant::Refused`]);
    /// - when the claim names a link (`link_digest`) whose recorded attempt reached Duo, nothing
    ///   is written and [`PushGrant::LinkUsed`] says when; when that attempt was refused before
    ///   any push less than ten seconds ago, nothing is written and [`PushGrant::Open`] names it
    ///   (a double click). Both are checked after the open attempt and before the limits. A
    ///   created attempt is recorded as the link's attempt in the same transaction.
    ///
    /// A push is an attempt with a Duo transaction id or one still `matching`. Reading the
    /// history and inserting must be serialized against concurrent claims, so that a burst of
    /// requests can never exceed a limit: SQLite takes the write lock first (`BEGIN
    /// IMMEDIATE`); a server database would lock, for example, the organization's row
    /// (`SELECT … FOR UPDATE`) before reading.
    async fn claim_push(
        &self,
        attempt: &NewAttempt,
        claim: &PushClaim,
    ) -> Result<PushGrant, StorageError>;
    /// When (Unix seconds) the verification link with this digest started a push that reached
    /// Duo, or `None` when it has not (see [`PushClaim::link_digest`]).
    async fn link_used(&self, token_digest: &str) -> Result<Option<i64>, StorageError>;
    /// When (Unix seconds) the case's newest `approved` attempt was answered (its
    /// `finished_at`), or `None` when no attempt of the case was approved.
    async fn last_approval(&self, case_id: i64) -> Result<Option<i64>, StorageError>;

    /// The session store for sign-in, kept in the same database.
    fn session_store(&self) -> Arc<dyn tower_sessions::SessionStore>;
}

pub type Store = Arc<dyn Storage>;

/// What one checkpoint of SQLite's write-ahead log did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// Another checkpoint was running, so this one did nothing.
    pub busy: bool,
    /// Frames in the log.
    pub log_frames: i64,
    /// Frames of the log now in the database file.
    pub copied_frames: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: i64,
    pub name: String,
}

/// Duo keys of one organization; secret keys stay sealed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuoAccountRow {
    pub organization_id: i64,
    /// Where the Auth API application answers (for an MSP child: the child's API hostname).
    pub api_host: String,
    pub auth_ikey: String,
    pub auth_skey_sealed: String,
    /// How the account's user directory is read.
    pub directory: DuoDirectoryKeys,
    pub caller_code: CallerCodeVia,
}

impl DuoAccountRow {
    /// An account with its own Auth and Admin API applications, caller code in push details.
    pub fn direct(
        organization_id: i64,
        api_host: &str,
        auth_ikey: &str,
        auth_skey_sealed: String,
        admin_ikey: &str,
        admin_skey_sealed: String,
    ) -> DuoAccountRow {
        DuoAccountRow {
            organization_id,
            api_host: api_host.to_owned(),
            auth_ikey: auth_ikey.to_owned(),
            auth_skey_sealed,
            directory: DuoDirectoryKeys::AdminApi {
                ikey: admin_ikey.to_owned(),
                skey_sealed: admin_skey_sealed,
            },
            caller_code: CallerCodeVia::PushDetails,
        }
    }
}

/// The keys that read an organization's Duo users (and send verification pushes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DuoDirectoryKeys {
    /// The account's own Admin API application, on the account's API host.
    AdminApi { ikey: String, skey_sealed: String },
    /// An MSP parent's Accounts API application acting on one of its child accounts.
    AccountsApi(MspChildAccess),
}

impl DuoDirectoryKeys {
    /// `admin_api` or `accounts_api`, as stored and as forms name it.
    pub fn kind(&self) -> &'static str {
        match self {
            DuoDirectoryKeys::AdminApi { .. } => DIRECTORY_ADMIN_API,
            DuoDirectoryKeys::AccountsApi(_) => DIRECTORY_ACCOUNTS_API,
        }
    }
}

pub const DIRECTORY_ADMIN_API: &str = "admin_api";
pub const DIRECTORY_ACCOUNTS_API: &str = "accounts_api";

/// An MSP parent's Accounts API keys and the child account they act on, as Duo listed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MspChildAccess {
    /// The parent's API hostname, where the child accounts are listed.
    pub parent_api_host: String,
    pub ikey: String,
    pub skey_sealed: String,
    pub account_id: String,
    pub name: String,
    /// The child's `api_hostname` as Duo returned it; Admin API calls go there.
    pub api_hostname: String,
}

#[derive(Clone, Debug)]
pub struct NewPsaConnection {
    pub kind: String,
    pub name: String,
    pub settings: serde_json::Value,
    pub secrets_sealed: String,
}

#[derive(Clone, Debug)]
pub struct PsaConnectionRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub settings: serde_json::Value,
    pub secrets_sealed: String,
}

/// One ticket under verification, with what the PSA said about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketCase {
    pub id: i64,
    pub connection_id: i64,
    pub ticket_id: String,
    pub state: String,
    pub organization_id: Option<i64>,
    pub summary: Option<String>,
    pub company_id: Option<String>,
    pub contact_first: Option<String>,
    pub contact_last: Option<String>,
    pub contact_email: Option<String>,
    pub problem: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NewAttempt {
    pub case_id: i64,
    pub technician_id: Option<i64>,
    pub technician_name: String,
    pub state: String,
}

/// One push (or refused push) asked for by a technician.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    pub case_id: i64,
    pub technician_id: Option<i64>,
    pub technician_name: String,
    pub state: String,
    pub duo_user_id: Option<String>,
    pub duo_username: Option<String>,
    pub txid: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The code shown in the push that the caller reads back: deskproof's own, or the
    /// confirmation code Duo chose for a verification push.
    pub caller_code: Option<String>,
    /// For a refusal by the push policy: when (Unix seconds) the next push is allowed.
    pub next_push_at: Option<i64>,
    /// Which push went out; `txid` is its transaction id or verification `push_id`.
    pub push_kind: PushKind,
}

/// Which Duo API a push of an attempt went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PushKind {
    /// `POST /auth/v2/auth`, followed with `auth_status`.
    #[default]
    Auth,
    /// The Admin API verification push, followed with `verification_push_response`.
    Verification,
}

impl PushKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Auth => "auth",
            PushKind::Verification => "verification",
        }
    }
}

/// Who a push is for and the limits in force, for [`Storage::claim_push`].
#[derive(Clone, Debug)]
pub struct PushClaim {
    pub organization_id: i64,
    /// See [`crate::verify::rules::contact_key`].
    pub contact_key: String,
    /// The code the caller reads back from the push.
    pub caller_code: String,
    pub limits: PushLimits,
    /// Unix seconds.
    pub now: i64,
    /// The SHA-256 (hex) of the verification link the push was asked through, if any.
    pub link_digest: Option<String>,
    /// Until when (milliseconds since 1970) a new attempt holds the ticket unless renewed with
    /// [`Storage::renew_matching`].
    pub matching_until: i64,
}

/// What a change of an attempt's state writes with it, in the same transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Effects<'a> {
    /// A note for the ticket, with the job that posts it.
    pub note: Option<&'a NewNote>,
    /// A job that follows the change (the push's status poll).
    pub job: Option<&'a NewJob>,
    pub audit: Option<&'a AuditEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushGrant {
    /// A new attempt, in state `matching`: go ahead and push.
    Created(i64),
    /// The case already has this attempt under way; nothing was written.
    Open(i64),
    /// A `refused` attempt was recorded with the refusal's reason.
    Refused(i64, Refusal),
    /// The link already started a push at this time (Unix seconds); nothing was written.
    LinkUsed(i64),
}

/// A note to write on a ticket, queued together with the change that causes it.
#[derive(Clone, Debug)]
pub struct NewNote {
    pub case_id: i64,
    pub kind: String,
    pub body: String,
    /// When the posting job becomes due, in milliseconds.
    pub run_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteRow {
    pub id: i64,
    pub case_id: i64,
    pub kind: String,
    pub body: String,
    pub psa_note_id: Option<String>,
    /// A post was started before: it may have reached the PSA without being recorded.
    pub post_started: bool,
}

#[derive(Clone, Debug)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// At most one job with this key is ever queued.
    pub dedupe_key: Option<String>,
    pub run_at: i64,
}

/// Which jobs a worker takes: waiting on Duo for pushes, or everything else. Separate lanes
/// keep many pending pushes from holding up ticket intake and notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// `poll` jobs: long-polling Duo for a push's answer.
    Polls,
    /// Every other job.
    Work,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub organization_id: Option<i64>,
    /// The PSA connection the ticket belongs to: ticket numbers repeat across connections.
    /// Entries stored before it was recorded have none.
    pub connection_id: Option<i64>,
    pub ticket: Option<String>,
    pub contact: Option<String>,
    pub duo_user: Option<String>,
    pub outcome: Option<String>,
    pub txid: Option<String>,
    pub detail: Option<String>,
}

/// A PSA company mapped to an organization, with both names for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanyMappingRow {
    pub connection_id: i64,
    pub connection_name: String,
    pub psa_company_id: String,
    pub organization_id: i64,
    pub organization_name: String,
}

/// What to look for in the audit log; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub organization_id: Option<i64>,
    pub connection: Option<ConnectionFilter>,
    /// Exact ticket id.
    pub ticket: Option<String>,
    /// Part of the actor's name, case-insensitive.
    pub actor: Option<String>,
    /// Exact outcome (an attempt state such as `approved`).
    pub outcome: Option<String>,
    /// Entries at or after this instant (`YYYY-MM-DDTHH:MM:SSZ` text, compared as text).
    pub from: Option<String>,
    /// Entries before this instant (same form).
    pub until: Option<String>,
    /// Only entries with a smaller id (newest first) or a larger one (oldest first): where
    /// the previous page of a long listing stopped.
    pub after_id: Option<i64>,
    pub oldest_first: bool,
    pub limit: i64,
}

/// Which PSA connection audit entries must be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionFilter {
    /// Entries recorded with this connection.
    Is(i64),
    /// Entries recorded before the connection was noted.
    Unrecorded,
}

/// One stored audit entry with its id and its organization's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub organization_name: Option<String>,
    pub connection_name: Option<String>,
    pub entry: AuditEntry,
}

/// Opens the database named by `url` and applies the migrations: a SQLite file (created if
/// needed) or an existing PostgreSQL database.
pub async fn connect(url: &str) -> Result<Store, StorageError> {
    Ok(Arc::new(connect_sql(url).await?))
}

/// [`connect`], keeping the concrete type for callers that need the pool.
pub async fn connect_sql(url: &str) -> Result<SqlStorage, StorageError> {
    if url.starts_with("sqlite:") {
        SqlStorage::connect_sqlite(url).await
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        SqlStorage::connect_postgres(url).await
    } else {
        Err(StorageError::UnsupportedUrl(url.to_owned()))
    }
}

/// Adapts a shared session store to the session layer, which wants a concrete type.
#[derive(Clone, Debug)]
pub struct SharedSessionStore(pub Arc<dyn tower_sessions::SessionStore>);

#[async_trait::async_trait]
impl tower_sessions::SessionStore for SharedSessionStore {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.create(record).await
    }

    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.save(record).await
    }

    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        self.0.load(id).await
    }

    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.delete(id).await
    }
}
