//! The verification flow as a small state machine kept in the database.
//!
//! Ticket case states: `received` → `ready` (link note queued) | `incomplete` (fields missing) |
//! `contact_elsewhere` (the contact is filed under another company) | `unmapped` (company has
//! no organization). Attempt states: `matching` → `pushed` →
//! `approved` | `denied` | `fraud` | `timed_out` | `bypass` | `locked_out` | `failed`, or
//! `matching` → `refused` when no push could be sent.
use std::sync::Arc;

use app::model::{AttemptRow, VerificationPage};

use crate::crypto::MasterKey;
use crate::policy::Policy;
use crate::psa::PsaKind;
use crate::storage::{
    Attempt, AuditEntry, Effects, NewAttempt, NewJob, NewNote, PushClaim, PushGrant, PushKind,
    StorageError, Store, TicketCase,
};
use crate::verify::link::{self, LinkClaims, LinkError};
use crate::verify::matching::{self, Candidate, ContactIdentity, MatchBy, MatchResult};
use crate::verify::notes;
use crate::verify::pod;
use crate::verify::ports::{
    CallerCodeVia, Clients, Preauth, PushStatus, RemoteError, VerificationPushError,
};
use crate::verify::rules::{self, PushLimits};

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("This ticket is not known to deskproof.")]
    UnknownCase,
    #[error("This ticket cannot be verified: {0}")]
    NotReady(String),
    #[error(
        "No push was sent: this ticket's contact was verified at {at}, and that counts until \
         {until}. A new push is allowed after that."
    )]
    AlreadyVerified { at: String, until: String },
    #[error(
        "This link was already used to send a Duo Push at {0}. A signed-in technician can get \
         a fresh link to the ticket."
    )]
    LinkUsed(String),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Settings the flow needs.
#[derive(Clone, Debug)]
pub struct FlowSettings {
    pub public_url: String,
    /// Policy before the stored defaults and organization overrides apply.
    pub policy: Policy,
    /// First delay before a failed note is posted again; doubles each time, up to a minute.
    pub retry_base_ms: u64,
    /// How long a click's attempt holds its ticket without being renewed while deskproof
    /// matches and pushes; renewed every third of it. A process that stops mid-click frees the
    /// ticket once this runs out.
    pub matching_lease: std::time::Duration,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            public_url: "http://127.0.0.1:3000".into(),
            policy: Policy::default(),
            retry_base_ms: 1000,
            matching_lease: std::time::Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct Flow {
    pub store: Store,
    pub clients: Arc<dyn Clients>,
    pub key: MasterKey,
    pub settings: FlowSettings,
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Job times are in milliseconds so retries can be spaced finely.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn contact_of(case: &TicketCase) -> ContactIdentity {
    ContactIdentity {
        first_name: case.contact_first.clone(),
        last_name: case.contact_last.clone(),
        email: case.contact_email.clone(),
    }
}

fn contact_label(case: &TicketCase) -> String {
    let name = [case.contact_first.as_deref(), case.contact_last.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        "(no contact)".into()
    } else {
        name
    }
}

impl Flow {
    /// The policy in force for an organization: built-in, then stored defaults, then its own.
    pub async fn policy(&self, organization_id: i64) -> Result<Policy, FlowError> {
        let global = self.store.policy_settings(None).await?;
        let own = self.store.policy_settings(Some(organization_id)).await?;
        Ok(self.settings.policy.with(&global).with(&own))
    }

    /// Whether the ticket is verified in the ConnectWise pod rather than through a link: the
    /// organization has pod mode on and the ticket's connection has a pod that can open, i.e.
    /// its PSA hosts pods and the ConnectWise addresses it answers are set up. Otherwise the
    /// note carries a link, so every ticket stays verifiable.
    pub async fn pod_mode(&self, connection_id: i64, policy: &Policy) -> Result<bool, FlowError> {
        if !policy.pod_enabled {
            return Ok(false);
        }
        let Some(connection) = self.store.psa_connection(connection_id).await? else {
            return Ok(false);
        };
        let has_pod = PsaKind::parse(&connection.kind).is_some_and(PsaKind::has_pod);
        if has_pod && pod::connection_pod_origins(&connection).is_empty() {
            tracing::warn!(
                connection.id = connection_id,
                "pod mode is on but the connection has no pod origins: writing a link instead"
            );
            return Ok(false);
        }
        Ok(has_pod)
    }

    pub fn link_for(&self, case_id: i64, organization_id: i64, policy: &Policy) -> String {
        let token = link::sign(
            self.key.link_key(),
            LinkClaims {
                case_id,
                organization_id,
                expires_at: now() + policy.link_lifetime_hours * 3600,
            },
        );
        format!(
            "{}/verify/{token}",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    /// Checks a link and returns its ticket case. The case must still belong to the
    /// organization the link was made for.
    pub async fn open_link(&self, token: &str) -> Result<TicketCase, FlowError> {
        let claims = link::verify(self.key.link_key(), token, now())?;
        let case = self
            .store
            .ticket_case(claims.case_id)
            .await?
            .ok_or(FlowError::UnknownCase)?;
        if case.organization_id != Some(claims.organization_id) {
            return Err(FlowError::Link(LinkError::Malformed));
        }
        Ok(case)
    }

    /// For a genuine link, expired or not: the path of a new link to the same ticket. The
    /// signature is checked as always; only the expiry is forgiven.
    pub async fn renew_link(&self, token: &str) -> Result<String, FlowError> {
        let claims = match link::verify(self.key.link_key(), token, now()) {
            Ok(claims) | Err(LinkError::Expired(claims)) => claims,
            Err(e) => return Err(e.into()),
        };
        let case = self
            .store
            .ticket_case(claims.case_id)
            .await?
            .ok_or(FlowError::UnknownCase)?;
        if case.organization_id != Some(claims.organization_id) {
            return Err(FlowError::Link(LinkError::Malformed));
        }
        let policy = self.policy(claims.organization_id).await?;
        let url = self.link_for(case.id, claims.organization_id, &policy);
        let token = url.rsplit('/').next().unwrap_or_default();
        Ok(format!("/verify/{token}"))
    }

    /// What the verification page shows for a case. Reads only: never sends a push.
    pub async fn page(&self, case: &TicketCase) -> Result<VerificationPage, FlowError> {
        let organization = match case.organization_id {
            Some(id) => self.store.organization(id).await?.map(|o| o.name),
            None => None,
        };
        let (matched, problem) = if case.state == "ready" {
            let matched = match self.preview_match(case).await {
                Ok(m) => m,
                Err(e) => format!("Duo could not be asked ({e})."),
            };
            (matched, None)
        } else {
            let problem = case.problem.clone().unwrap_or_else(|| case.state.clone());
            (
                "(not looked up)".to_owned(),
                Some(format!("This ticket cannot be verified: {problem}")),
            )
        };
        let attempts = self.store.attempts_for_case(case.id).await?;
        let verified_until = self.verified_until(case, &attempts).await?;
        let caller_code = attempts
            .first()
            .filter(|a| a.state == "pushed")
            .and_then(|a| a.caller_code.clone());
        let attempts = rows_of(attempts, verified_until.clone());
        Ok(VerificationPage {
            ticket_id: case.ticket_id.clone(),
            summary: case.summary.clone().unwrap_or_default(),
            contact: contact_label(case),
            organization,
            matched,
            problem,
            attempts,
            verified_until,
            caller_code,
            link_used: None,
        })
    }

    /// When the case's newest approval was answered and until when it counts, while it does.
    async fn verified(
        &self,
        case_id: i64,
        policy: &Policy,
        now: i64,
    ) -> Result<Option<(i64, i64)>, FlowError> {
        Ok(self
            .store
            .last_approval(case_id)
            .await?
            .and_then(|at| approval_window(at, policy, now)))
    }

    /// Until when (as pages show it) the newest approval among `attempts` counts, while it does.
    /// Taken from the rows the page shows, so an approval is never shown without it.
    async fn verified_until(
        &self,
        case: &TicketCase,
        attempts: &[Attempt],
    ) -> Result<Option<String>, FlowError> {
        let (Some(org), Some(at)) = (
            case.organization_id,
            attempts
                .iter()
                .find(|a| a.state == "approved")
                .and_then(answered_at),
        ) else {
            return Ok(None);
        };
        let now = now();
        Ok(approval_window(at, &self.policy(org).await?, now)
            .map(|(_, until)| rules::clock(until, now)))
    }

    /// The pushes asked for on a case, newest first, as pages show them; the newest approval
    /// says until when it counts, while it does.
    pub async fn attempt_rows(&self, case: &TicketCase) -> Result<Vec<AttemptRow>, FlowError> {
        let attempts = self.store.attempts_for_case(case.id).await?;
        let until = self.verified_until(case, &attempts).await?;
        Ok(rows_of(attempts, until))
    }

    /// The Duo user the contact matches, masked, or why there is none. Reads only.
    async fn preview_match(&self, case: &TicketCase) -> Result<String, FlowError> {
        let org = case.organization_id.ok_or(FlowError::UnknownCase)?;
        let duo = self.clients.duo(org).await?;
        let users = duo.directory().await?;
        Ok(match users.find(&contact_of(case)) {
            MatchResult::One { user, by } => format!(
                "{} (matched by {})",
                matching::mask_username(&user.username),
                match by {
                    MatchBy::Email => "e-mail",
                    MatchBy::Name => "name",
                }
            ),
            other => refusal_for_match(&other),
        })
    }

    /// Step 1: fetch the ticket and contact, check them, map the company, queue the link note.
    #[tracing::instrument(skip(self), fields(ticket.id))]
    pub async fn intake(&self, case_id: i64) -> Result<(), FlowError> {
        let mut case = self
            .store
            .ticket_case(case_id)
            .await?
            .ok_or(FlowError::UnknownCase)?;
        tracing::Span::current().record("ticket.id", case.ticket_id.as_str());
        if case.state != "received" {
            return Ok(());
        }
        let source = self.clients.ticket_source(case.connection_id).await?;
        let facts = source.ticket_facts(&case.ticket_id).await?;
        case.summary = facts.summary.clone();
        case.company_id = facts.company_id.clone();
        case.contact_first = facts.first_name.clone();
        case.contact_last = facts.last_name.clone();
        case.contact_email = facts.email.clone();
        let note = if !facts.missing.is_empty() {
            case.state = "incomplete".into();
            case.problem = Some(format!("missing: {}", facts.missing.join(", ")));
            ("incomplete", notes::missing_fields(&facts.missing))
        } else if let Some(elsewhere) = &facts.contact_company_elsewhere {
            let company = case.company_id.clone().unwrap_or_default();
            case.state = "contact_elsewhere".into();
            case.problem = Some(format!(
                "the contact belongs to company {elsewhere}, not to the ticket's company \
                 {company}"
            ));
            let label = facts.company_name.clone().unwrap_or(company);
            (
                "contact_elsewhere",
                notes::contact_elsewhere(&label, elsewhere),
            )
        } else {
            let company = case.company_id.clone().unwrap_or_default();
            match self
                .store
                .organization_for_company(case.connection_id, &company)
                .await?
            {
                None => {
                    case.state = "unmapped".into();
                    case.problem = Some(format!("company {company} is not mapped"));
                    let label = facts.company_name.clone().unwrap_or(company);
                    ("unmapped", notes::unmapped(&label))
                }
                Some(org) => {
                    case.state = "ready".into();
                    case.organization_id = Some(org);
                    let policy = self.policy(org).await?;
                    if self.pod_mode(case.connection_id, &policy).await? {
                        ("pod", notes::pod_available())
                    } else {
                        ("link", notes::link(&self.link_for(case.id, org, &policy)))
                    }
                }
            }
        };
        let note = NewNote {
            case_id: case.id,
            kind: note.0.into(),
            body: note.1,
            run_at: now_ms(),
        };
        self.store.update_ticket_case(&case, Some(&note)).await?;
        tracing::info!(state = %case.state, "ticket taken in");
        Ok(())
    }

    /// Step 2: a technician asked for a push. Finds the one Duo user and sends the push, or
    /// records why not. Never called from a GET.
    #[tracing::instrument(skip(self, case, technician_name), fields(ticket.id = %case.ticket_id))]
    pub async fn request_push(
        &self,
        case: &TicketCase,
        technician_id: Option<i64>,
        technician_name: &str,
    ) -> Result<Attempt, FlowError> {
        self.push_for(case, None, technician_id, technician_name)
            .await
    }

    /// [`Flow::request_push`] through a verification link, which one push uses up.
    pub async fn request_push_via_link(
        &self,
        case: &TicketCase,
        token: &str,
        technician_id: Option<i64>,
        technician_name: &str,
    ) -> Result<Attempt, FlowError> {
        self.push_for(
            case,
            Some(link_digest(token)),
            technician_id,
            technician_name,
        )
        .await
    }

    /// When (as the page shows it) this link already started a push.
    pub async fn link_used_at(&self, token: &str) -> Result<Option<String>, FlowError> {
        let now = now();
        Ok(self
            .store
            .link_used(&link_digest(token))
            .await?
            .map(|at| rules::clock(at, now)))
    }

    #[tracing::instrument(skip(self, link_digest, technician_name), fields(ticket.id = %case.ticket_id))]
    async fn push_for(
        &self,
        case: &TicketCase,
        link_digest: Option<String>,
        technician_id: Option<i64>,
        technician_name: &str,
    ) -> Result<Attempt, FlowError> {
        if case.state != "ready" {
            return Err(FlowError::NotReady(
                case.problem.clone().unwrap_or_else(|| case.state.clone()),
            ));
        }
        let org = case.organization_id.ok_or(FlowError::UnknownCase)?;
        let policy = self.policy(org).await?;
        let now = now();
        if let Some((at, until)) = self.verified(case.id, &policy, now).await? {
            return Err(FlowError::AlreadyVerified {
                at: rules::clock(at, now),
                until: rules::clock(until, now),
            });
        }
        let claim = PushClaim {
            organization_id: org,
            contact_key: rules::contact_key(&contact_of(case)),
            caller_code: new_caller_code(),
            limits: PushLimits::from_policy(&policy),
            now,
            link_digest,
            matching_until: self.matching_until(),
        };
        let granted = self
            .store
            .claim_push(
                &NewAttempt {
                    case_id: case.id,
                    technician_id,
                    technician_name: technician_name.to_owned(),
                    state: "matching".into(),
                },
                &claim,
            )
            .await?;
        let id = match granted {
            PushGrant::Created(id) => id,
            // One push at a time per ticket: a second click gets the attempt under way.
            PushGrant::Open(id) => {
                return self.store.attempt(id).await?.ok_or(FlowError::UnknownCase);
            }
            PushGrant::LinkUsed(at) => return Err(FlowError::LinkUsed(rules::clock(at, now))),
            // The policy said no: the refusal is recorded with its reason, and no note is
            // written, so repeated clicks cannot flood the ticket.
            PushGrant::Refused(id, refusal) => {
                let attempt = self
                    .store
                    .attempt(id)
                    .await?
                    .ok_or(FlowError::UnknownCase)?;
                self.audit(
                    case,
                    &attempt,
                    "push refused by policy",
                    Some(&refusal.reason),
                )
                .await?;
                tracing::info!(attempt.id = id, rule = ?refusal.rule, "push refused by policy");
                return Ok(attempt);
            }
        };
        let mut attempt = self
            .store
            .attempt(id)
            .await?
            .ok_or(FlowError::UnknownCase)?;
        // The attempt holds the ticket while this process works on it; should the process stop,
        // the lease runs out and the next click is not kept waiting.
        let attempt_id = attempt.id;
        // The renewals are a future of their own, polled beside the push: a renewal waiting
        // for the database writer never stops the push that holds the writer from finishing.
        let renewals = async {
            loop {
                tokio::time::sleep(self.settings.matching_lease / 3).await;
                self.renew_matching(attempt_id).await;
            }
        };
        let pushed = tokio::select! {
            outcome = self.try_push(case, org, &mut attempt) => outcome,
            never = renewals => never,
        };
        match pushed {
            Ok(()) => {}
            Err(reason) => {
                attempt.state = "refused".into();
                attempt.reason = Some(reason.clone());
                attempt.finished_at = Some(now_text());
                let note = NewNote {
                    case_id: case.id,
                    kind: "refused".into(),
                    body: notes::not_verified(technician_name, &reason),
                    run_at: now_ms(),
                };
                let audit = audit_entry(case, &attempt, "push refused", Some(&reason));
                let effects = Effects {
                    note: Some(&note),
                    audit: Some(&audit),
                    ..Effects::default()
                };
                if self
                    .store
                    .transition_attempt(&attempt, "matching", effects)
                    .await?
                {
                    tracing::info!(attempt.id = attempt.id, "no push sent");
                } else {
                    tracing::warn!(attempt.id = attempt.id, "attempt ended elsewhere first");
                }
            }
        }
        Ok(attempt)
    }

    /// Err carries the reason no push was sent, in words for the technician and the note.
    async fn try_push(
        &self,
        case: &TicketCase,
        org: i64,
        attempt: &mut Attempt,
    ) -> Result<(), String> {
        let unreachable = |e: RemoteError| format!("Duo could not be reached ({e}).");
        let duo = self.clients.duo(org).await.map_err(unreachable)?;
        let users = duo.directory().await.map_err(unreachable)?;
        let contact = contact_of(case);
        let mut found = users.find(&contact);
        if found == MatchResult::None {
            // A kept directory may predate a user added in Duo a moment ago.
            if let Some(newer) = duo.directory_after_miss().await.map_err(unreachable)? {
                found = newer.find(&contact);
            }
        }
        let mut user = match found {
            MatchResult::One { user, .. } => user,
            other => return Err(refusal_for_match(&other)),
        };
        attempt.duo_user_id = Some(user.user_id.clone());
        attempt.duo_username = Some(user.username.clone());
        // A kept directory may be minutes old: a status that would refuse is read again first.
        if duo.cached() && check_status(&user).is_err() {
            user = duo
                .user(&user.user_id)
                .await
                .map_err(unreachable)?
                .ok_or_else(|| "the matched Duo user no longer exists.".to_owned())?;
        }
        check_status(&user)?;
        // Preauth asks Duo about this user now, whatever the directory said: a user disabled,
        // locked out or put in bypass since the listing gets no push.
        let fresh = user;
        match duo.preauth(&fresh.username).await.map_err(unreachable)? {
            Preauth::Push => {}
            Preauth::Allow => {
                return Err(
                    "Duo would let this user in without a push (bypass or a trusted \
                            network), which proves nothing."
                        .into(),
                )
            }
            Preauth::Deny(msg) => return Err(format!("Duo refuses this user ({msg}).")),
            Preauth::NotEnrolled => return Err("the Duo user is not enrolled.".into()),
            Preauth::NoPushDevice => {
                return Err("the Duo user has no device that can receive a push.".into())
            }
        }
        // With Duo's verification push, Duo picks the code and shows it with its own text. A
        // refusal for lack of permission sent nothing, so the Auth API push goes instead.
        // Limitation: the refusal is not remembered; each click asks Duo once more.
        let mut fell_back = None;
        if duo.caller_code_via() == CallerCodeVia::VerificationPush {
            match duo.verification_push(&fresh.user_id).await {
                Ok(sent) => {
                    attempt.push_kind = PushKind::Verification;
                    attempt.txid = Some(sent.push_id);
                    attempt.caller_code = Some(sent.confirmation_code);
                    return self.record_pushed(case, attempt, None).await;
                }
                Err(VerificationPushError::NotPermitted(why)) => {
                    tracing::warn!(attempt.id = attempt.id, error = %why,
                        "verification push not permitted; sending the Auth API push");
                    fell_back = Some(format!(
                        "Duo refused the verification push ({why}); sent the Auth API push with \
                         deskproof's code in its details instead."
                    ));
                }
                Err(VerificationPushError::NoPushPhone) => {
                    return Err(
                        "the Duo user has no activated phone that can receive a push.".into(),
                    )
                }
                Err(VerificationPushError::UnknownUser) => {
                    return Err("the matched Duo user no longer exists.".into())
                }
                Err(VerificationPushError::Remote(e)) => {
                    return Err(format!("Duo did not accept the verification push ({e})."))
                }
            }
        }
        let summary = case.summary.clone().unwrap_or_default();
        let details = attempt
            .caller_code
            .iter()
            .map(|code| (CALLER_CODE_LABEL.to_owned(), code.clone()))
            .collect::<Vec<_>>();
        let txid = duo
            .push_with_details(&fresh.username, &notes::push_text(&summary), &details)
            .await
            .map_err(|e| format!("Duo did not accept the push ({e})."))?;
        attempt.push_kind = PushKind::Auth;
        attempt.txid = Some(txid);
        self.record_pushed(case, attempt, fell_back.as_deref())
            .await
    }

    /// Records a push Duo accepted, the job that follows it and its audit entry, together: a
    /// stop cannot leave a pushed attempt that nothing polls.
    async fn record_pushed(
        &self,
        case: &TicketCase,
        attempt: &mut Attempt,
        detail: Option<&str>,
    ) -> Result<(), String> {
        attempt.state = "pushed".into();
        let poll = NewJob {
            kind: "poll".into(),
            payload: serde_json::json!({ "attempt_id": attempt.id }),
            dedupe_key: Some(format!("poll:{}", attempt.id)),
            run_at: now_ms(),
        };
        let audit = audit_entry(case, attempt, "push sent", detail);
        let effects = Effects {
            job: Some(&poll),
            audit: Some(&audit),
            ..Effects::default()
        };
        let recorded = self
            .store
            .transition_attempt(attempt, "matching", effects)
            .await
            .map_err(|e| format!("the push was sent but could not be recorded ({e})."))?;
        if !recorded {
            // The lease ran out (a stalled database, say) and a later click took the ticket.
            tracing::warn!(
                attempt.id = attempt.id,
                "push sent after the attempt was given up"
            );
            return Err("the push was sent after this attempt had been given up; \
                        the newer attempt on this ticket stands."
                .into());
        }
        tracing::info!(
            attempt.id = attempt.id,
            push = attempt.push_kind.as_str(),
            "pushed"
        );
        Ok(())
    }

    /// Step 3: one long-poll of a pushed attempt. Returns true when the outcome is final.
    #[tracing::instrument(skip(self))]
    pub async fn poll(&self, attempt_id: i64) -> Result<bool, FlowError> {
        let Some(mut attempt) = self.store.attempt(attempt_id).await? else {
            return Ok(true);
        };
        if attempt.state != "pushed" {
            return Ok(true);
        }
        let case = self
            .store
            .ticket_case(attempt.case_id)
            .await?
            .ok_or(FlowError::UnknownCase)?;
        let org = case.organization_id.ok_or(FlowError::UnknownCase)?;
        let txid = attempt.txid.clone().unwrap_or_default();
        let policy = self.policy(org).await?;
        let duo = self.clients.duo(org).await?;
        let status = match attempt.push_kind {
            PushKind::Auth => duo.status(&txid).await?,
            PushKind::Verification => {
                let user_id = attempt.duo_user_id.clone().unwrap_or_default();
                duo.verification_status(&user_id, &txid).await?
            }
        };
        let age = created_age_secs(&attempt.created_at);
        let state = match status {
            PushStatus::Waiting if age < policy.push_timeout_secs => return Ok(false),
            PushStatus::Waiting | PushStatus::TimedOut => "timed_out",
            PushStatus::Approved => "approved",
            PushStatus::Denied => "denied",
            PushStatus::Fraud => "fraud",
            PushStatus::Bypass => "bypass",
            PushStatus::LockedOut => "locked_out",
            PushStatus::Failed(ref msg) => {
                attempt.reason = Some(msg.clone());
                "failed"
            }
        };
        attempt.state = state.into();
        attempt.finished_at = Some(now_text());
        let user = attempt.duo_username.clone().unwrap_or_default();
        let tech = attempt.technician_name.clone();
        let pod_mode = self.pod_mode(case.connection_id, &policy).await?;
        let new_link = || {
            if pod_mode {
                notes::POD_TRY_AGAIN.to_owned()
            } else {
                self.link_for(case.id, org, &policy)
            }
        };
        let answered = now();
        let body = match state {
            "approved" => notes::approved(&user, &tech),
            "denied" if policy.deny_cooldown_minutes > 0 => format!(
                "{} {}",
                notes::denied(&user, &tech, &new_link()),
                notes::cooldown(&rules::clock(
                    answered + policy.deny_cooldown_minutes * 60,
                    answered
                ))
            ),
            "denied" => notes::denied(&user, &tech, &new_link()),
            "timed_out" => notes::timed_out(&user, &tech, &new_link()),
            "fraud" => format!(
                "{} {}",
                notes::fraud(&user, &tech),
                notes::fraud_lock(&rules::clock(
                    answered + policy.fraud_lock_hours * 3600,
                    answered
                ))
            ),
            "bypass" => notes::not_verified(
                &tech,
                "Duo answered with bypass: the user is exempt from two-factor, so no push reached \
                 a device.",
            ),
            "locked_out" => notes::not_verified(&tech, "the Duo user is locked out."),
            _ => notes::not_verified(
                &tech,
                &format!(
                    "Duo ended the push ({}).",
                    attempt.reason.clone().unwrap_or_default()
                ),
            ),
        };
        let note = NewNote {
            case_id: case.id,
            kind: state.into(),
            body,
            run_at: now_ms(),
        };
        let audit = audit_entry(&case, &attempt, "push answered", None);
        let effects = Effects {
            note: Some(&note),
            audit: Some(&audit),
            ..Effects::default()
        };
        if !self
            .store
            .transition_attempt(&attempt, "pushed", effects)
            .await?
        {
            return Ok(true); // Another worker recorded the outcome first.
        }
        tracing::info!(attempt.id = attempt.id, outcome = state, "push answered");
        Ok(true)
    }

    /// Posts one queued note. Retryable failures are left to the job's back-off.
    pub async fn post_note(&self, note_id: i64) -> Result<(), FlowError> {
        let Some(note) = self.store.note(note_id).await? else {
            return Ok(());
        };
        if note.psa_note_id.is_some() {
            return Ok(());
        }
        let case = self
            .store
            .ticket_case(note.case_id)
            .await?
            .ok_or(FlowError::UnknownCase)?;
        let source = self.clients.ticket_source(case.connection_id).await?;
        let marker = notes::reference(case.id, note.id);
        if note.post_started {
            // An earlier post may have reached the PSA before its process stopped.
            if let Some(psa_id) = source.find_note(&case.ticket_id, &marker).await? {
                self.store.mark_note_posted(note.id, &psa_id).await?;
                tracing::info!(ticket.id = %case.ticket_id, "note found already posted");
                return Ok(());
            }
        } else {
            self.store.start_note_post(note.id).await?;
        }
        let text = format!("{}\n\n{marker}", note.body);
        let psa_id = source.post_internal_note(&case.ticket_id, &text).await?;
        self.store.mark_note_posted(note.id, &psa_id).await?;
        tracing::info!(ticket.id = %case.ticket_id, note.kind = %note.kind, "note posted");
        Ok(())
    }

    async fn audit(
        &self,
        case: &TicketCase,
        attempt: &Attempt,
        action: &str,
        detail: Option<&str>,
    ) -> Result<(), StorageError> {
        self.store
            .append_audit(&audit_entry(case, attempt, action, detail))
            .await
    }

    async fn renew_matching(&self, attempt_id: i64) {
        if let Err(e) = self
            .store
            .renew_matching(attempt_id, self.matching_until())
            .await
        {
            tracing::warn!(attempt.id = attempt_id, error = %e, "attempt lease not renewed");
        }
    }

    /// When a lease taken or renewed now runs out, in milliseconds since 1970.
    fn matching_until(&self) -> i64 {
        now_ms() + self.settings.matching_lease.as_millis() as i64
    }
}

/// The audit entry for what happened to an attempt.
fn audit_entry(
    case: &TicketCase,
    attempt: &Attempt,
    action: &str,
    detail: Option<&str>,
) -> AuditEntry {
    AuditEntry {
        actor: attempt.technician_name.clone(),
        action: action.into(),
        organization_id: case.organization_id,
        connection_id: Some(case.connection_id),
        ticket: Some(case.ticket_id.clone()),
        contact: Some(contact_label(case)),
        duo_user: attempt.duo_username.clone(),
        outcome: Some(attempt.state.clone()),
        txid: attempt.txid.clone(),
        detail: detail.map(Into::into),
        ..Default::default()
    }
}

/// An approval answered at `at` and until when it counts, while it still does at `now`.
fn approval_window(at: i64, policy: &Policy, now: i64) -> Option<(i64, i64)> {
    let until = at + policy.verified_minutes * 60;
    (now < until).then_some((at, until))
}

/// When (Unix seconds) an attempt was answered: its finish, or its start for one that has none.
fn answered_at(a: &Attempt) -> Option<i64> {
    let text = a.finished_at.as_deref().unwrap_or(&a.created_at);
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Attempts as pages show them, newest first; `verified_until` goes on the newest approval.
fn rows_of(attempts: Vec<Attempt>, verified_until: Option<String>) -> Vec<AttemptRow> {
    let mut rows: Vec<AttemptRow> = attempts.into_iter().map(attempt_row).collect();
    if let Some(approved) = rows.iter_mut().find(|r| r.state == "approved") {
        approved.verified_until = verified_until;
    }
    rows
}

/// An attempt as pages show it: the Duo username masked; the caller code only while the push
/// waits for an answer, which is when the technician asks for it.
pub fn attempt_row(a: Attempt) -> AttemptRow {
    AttemptRow {
        caller_code: a.caller_code.filter(|_| a.state == "pushed"),
        verified_until: None,
        id: a.id,
        state: a.state,
        technician: a.technician_name,
        duo_user: a.duo_username.as_deref().map(matching::mask_username),
        reason: a.reason,
        created_at: a.created_at,
        next_push_at: a.next_push_at.and_then(|at| {
            time::OffsetDateTime::from_unix_timestamp(at)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
    }
}

/// How a used link is remembered: the SHA-256 of the token, in hex.
fn link_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The label of the caller code in the push's details.
pub const CALLER_CODE_LABEL: &str = "Code to read back";

/// A six-digit code for the caller to read back from the push.
fn new_caller_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000))
}

fn created_age_secs(created_at: &str) -> i64 {
    let parsed = time::PrimitiveDateTime::parse(
        created_at,
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
    );
    match parsed {
        Ok(t) => now() - t.assume_utc().unix_timestamp(),
        Err(_) => 0,
    }
}

fn refusal_for_match(result: &MatchResult) -> String {
    match result {
        MatchResult::One { .. } => String::new(),
        MatchResult::None => "no Duo user matches this contact's e-mail or name.".into(),
        MatchResult::Several { count, by } => format!(
            "{count} Duo users match this contact's {}, so the caller cannot be told apart.",
            match by {
                MatchBy::Email => "e-mail",
                MatchBy::Name => "name",
            }
        ),
    }
}

fn check_status(user: &Candidate) -> Result<(), String> {
    match user.status.as_str() {
        "active" => {}
        "bypass" => {
            return Err(
                "the Duo user is in bypass status: a push would be approved without \
                        reaching a device, which proves nothing."
                    .into(),
            )
        }
        "disabled" => return Err("the Duo user is disabled.".into()),
        "locked out" => return Err("the Duo user is locked out.".into()),
        other => return Err(format!("the Duo user's status is {other}.")),
    }
    if !user.is_enrolled {
        return Err("the Duo user is not enrolled.".into());
    }
    Ok(())
}
