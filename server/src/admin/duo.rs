//! An organization's Duo account on its settings page: direct Admin API keys, or an MSP
//! parent's Accounts API keys with a child account picked from Duo's list; the caller-code
//! setting; the child-account list and the key test.
use std::collections::BTreeMap;

use app::admin::{DuoChildView, DuoChildrenReply, DuoView, FormReply, TestReply};
use app::backend::BackendResult;

use super::{field, internal, invalid, is_key_text, AdminService};
use crate::duo::{ChildAccount, DuoClient, DuoError, RetryPolicy};
use crate::storage::{
    AuditEntry, DuoAccountRow, DuoDirectoryKeys, MspChildAccess, UserRecord,
    DIRECTORY_ACCOUNTS_API, DIRECTORY_ADMIN_API,
};
use crate::verify::clients::directory_client;
use crate::verify::ports::CallerCodeVia;

/// Buttons and saves ask Duo once more after a 429, not for minutes.
fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    }
}

/// What the settings page shows of a stored account: never a secret, only whether it is set.
pub fn duo_view(row: &DuoAccountRow) -> DuoView {
    let (admin_ikey, admin_skey_set, accounts_api_host, accounts_ikey, accounts_skey_set, child) =
        match &row.directory {
            DuoDirectoryKeys::AdminApi { ikey, skey_sealed } => (
                ikey.clone(),
                !skey_sealed.is_empty(),
                String::new(),
                String::new(),
                false,
                None,
            ),
            DuoDirectoryKeys::AccountsApi(c) => (
                String::new(),
                false,
                c.parent_api_host.clone(),
                c.ikey.clone(),
                !c.skey_sealed.is_empty(),
                Some(DuoChildView {
                    account_id: c.account_id.clone(),
                    name: c.name.clone(),
                    api_hostname: c.api_hostname.clone(),
                }),
            ),
        };
    DuoView {
        api_host: row.api_host.clone(),
        auth_ikey: row.auth_ikey.clone(),
        admin_ikey,
        auth_skey_set: !row.auth_skey_sealed.is_empty(),
        admin_skey_set,
        directory: row.directory.kind().to_owned(),
        accounts_api_host,
        accounts_ikey,
        accounts_skey_set,
        child,
        caller_code: row.caller_code.as_str().to_owned(),
    }
}

/// The form field a refusal of the Accounts API keys belongs next to.
fn accounts_error_field(e: &DuoError) -> &'static str {
    match e {
        DuoError::InvalidIntegrationKey | DuoError::MissingCredentials => "accounts_ikey",
        DuoError::InvalidSignature | DuoError::Forbidden { .. } => "accounts_skey",
        DuoError::InvalidApiHost(_)
        | DuoError::Transport(_)
        | DuoError::Timeout(_)
        | DuoError::NotFound => "accounts_api_host",
        _ => "_form",
    }
}

fn accounts_error_text(e: &DuoError) -> String {
    match e {
        DuoError::InvalidIntegrationKey => format!(
            "Duo refused this integration key: it is not an Accounts API application's ({}).",
            e.code().unwrap_or(40102)
        ),
        DuoError::InvalidSignature => {
            "Duo refused the signature: the Accounts API secret key is wrong (40103).".into()
        }
        DuoError::Transport(_) | DuoError::Timeout(_) | DuoError::NotFound => {
            format!("Duo could not be reached at this API hostname ({e}).")
        }
        other => format!("Duo refused: {other}"),
    }
}

/// The stored Accounts API secret key, when the account is an MSP child.
fn stored_accounts_secret(row: Option<&DuoAccountRow>) -> Option<String> {
    match row.map(|r| &r.directory) {
        Some(DuoDirectoryKeys::AccountsApi(c)) if !c.skey_sealed.is_empty() => {
            Some(c.skey_sealed.clone())
        }
        _ => None,
    }
}

/// Checks an integration key field; records the error and returns the trimmed value.
fn ikey_field<'a>(
    fields: &'a BTreeMap<String, String>,
    name: &str,
    reply: &mut FormReply,
) -> &'a str {
    let v = field(fields, name);
    if v.is_empty() {
        reply
            .errors
            .insert(name.into(), "Enter the integration key.".into());
    } else if !is_key_text(v) {
        reply.errors.insert(
            name.into(),
            "An integration key has no spaces and at most 100 characters.".into(),
        );
    }
    v
}

/// Checks an API hostname field; records the error and returns the trimmed value.
fn host_field<'a>(
    fields: &'a BTreeMap<String, String>,
    name: &str,
    reply: &mut FormReply,
) -> &'a str {
    let v = field(fields, name);
    if v.is_empty() {
        reply.errors.insert(
            name.into(),
            "Enter the API hostname, e.g. api-xxxxxxxx.duosecurity.com.".into(),
        );
    } else if crate::duo::client::parse_api_host(v).is_err() {
        reply.errors.insert(
            name.into(),
            "This is not an API hostname (api-xxxxxxxx.duosecurity.com, reached over HTTPS)."
                .into(),
        );
    }
    v
}

/// A secret key field: the typed value sealed, else the stored one for the same integration
/// key. Records the error; `replaced` gets `label` when a new value was typed.
fn secret_field(
    service: &AdminService,
    fields: &BTreeMap<String, String>,
    name: &str,
    stored: Option<String>,
    label: &'static str,
    replaced: &mut Vec<&'static str>,
    reply: &mut FormReply,
) -> Option<String> {
    let v = field(fields, name);
    if !v.is_empty() {
        if !is_key_text(v) {
            reply.errors.insert(
                name.into(),
                "A secret key has no spaces and at most 100 characters.".into(),
            );
            return None;
        }
        replaced.push(label);
        return Some(service.key.seal(v));
    }
    if stored.is_none() {
        reply
            .errors
            .insert(name.into(), "Enter the secret key.".into());
    }
    stored
}

impl AdminService {
    fn duo_client(&self, api_host: &str, ikey: &str, sealed: &str) -> BackendResult<DuoClient> {
        let skey = self.key.open(sealed).map_err(internal)?;
        DuoClient::with_http(api_host, ikey.to_owned(), skey, self.duo_http.clone())
            .map(|c| c.with_retry_policy(quick_retry()))
            .map_err(|e| invalid(format!("The keys cannot be used: {e}")))
    }

    /// The child accounts the Accounts API keys reach, or the reply naming what Duo refused.
    async fn child_accounts(
        &self,
        api_host: &str,
        ikey: &str,
        sealed: &str,
    ) -> BackendResult<Result<(DuoClient, Vec<ChildAccount>), FormReply>> {
        let parent = self.duo_client(api_host, ikey, sealed)?;
        Ok(match parent.list_child_accounts().await {
            Ok(mut children) => {
                children.sort_by(|a, b| a.name.cmp(&b.name));
                Ok((parent, children))
            }
            Err(e) => Err(FormReply::field(
                accounts_error_field(&e),
                accounts_error_text(&e),
            )),
        })
    }

    pub(super) async fn list_children(
        &self,
        organization_id: i64,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<DuoChildrenReply> {
        let stored = self
            .store
            .duo_account(organization_id)
            .await
            .map_err(internal)?;
        let mut reply = FormReply::default();
        let host = host_field(fields, "accounts_api_host", &mut reply);
        let ikey = ikey_field(fields, "accounts_ikey", &mut reply);
        let stored_secret = stored_accounts_secret(stored.as_ref());
        let mut replaced = Vec::new();
        let sealed = secret_field(
            self,
            fields,
            "accounts_skey",
            stored_secret,
            "accounts",
            &mut replaced,
            &mut reply,
        );
        let Some(sealed) = sealed.filter(|_| reply.ok()) else {
            return Ok(DuoChildrenReply {
                errors: reply.errors,
                children: Vec::new(),
            });
        };
        match self.child_accounts(host, ikey, &sealed).await? {
            Err(refused) => Ok(DuoChildrenReply {
                errors: refused.errors,
                children: Vec::new(),
            }),
            Ok((_, children)) if children.is_empty() => Ok(DuoChildrenReply {
                errors: BTreeMap::from([(
                    "child_account_id".to_owned(),
                    "Duo accepted the keys but lists no child account for them.".to_owned(),
                )]),
                children: Vec::new(),
            }),
            Ok((_, children)) => Ok(DuoChildrenReply {
                errors: BTreeMap::new(),
                children: children
                    .into_iter()
                    .map(|c| DuoChildView {
                        account_id: c.account_id.0,
                        name: c.name,
                        api_hostname: c.api_hostname,
                    })
                    .collect(),
            }),
        }
    }

    /// Checks the whole form; stores the account with its audit entry only when all of it is
    /// right. An MSP child is looked up in Duo's list with the submitted keys first.
    pub(super) async fn save_duo_form(
        &self,
        admin: &UserRecord,
        organization_id: i64,
        organization_name: &str,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<FormReply> {
        let existing = self
            .store
            .duo_account(organization_id)
            .await
            .map_err(internal)?;
        let mut reply = FormReply::default();
        let directory = match field(fields, "directory") {
            "" | DIRECTORY_ADMIN_API => DIRECTORY_ADMIN_API,
            DIRECTORY_ACCOUNTS_API => DIRECTORY_ACCOUNTS_API,
            _ => {
                reply.errors.insert(
                    "directory".into(),
                    "Choose direct Admin API keys or an MSP parent.".into(),
                );
                ""
            }
        };
        let caller_code = match field(fields, "caller_code") {
            "" => Some(CallerCodeVia::PushDetails),
            v => CallerCodeVia::parse(v),
        };
        if caller_code.is_none() {
            reply.errors.insert(
                "caller_code".into(),
                "Choose push details or Duo verification push.".into(),
            );
        }
        let mut replaced = Vec::new();
        let auth_ikey = ikey_field(fields, "auth_ikey", &mut reply);
        let stored_auth = existing
            .as_ref()
            .map(|e| e.auth_skey_sealed.clone())
            .filter(|s| !s.is_empty());
        let auth_skey = secret_field(
            self,
            fields,
            "auth_skey",
            stored_auth,
            "auth",
            &mut replaced,
            &mut reply,
        );

        if directory == DIRECTORY_ACCOUNTS_API {
            let host = host_field(fields, "accounts_api_host", &mut reply);
            let ikey = ikey_field(fields, "accounts_ikey", &mut reply);
            let sealed = secret_field(
                self,
                fields,
                "accounts_skey",
                stored_accounts_secret(existing.as_ref()),
                "accounts",
                &mut replaced,
                &mut reply,
            );
            let child_id = field(fields, "child_account_id");
            if child_id.is_empty() {
                reply.errors.insert(
                    "child_account_id".into(),
                    "List the child accounts and pick one.".into(),
                );
            }
            let (Some(auth_skey), Some(sealed), Some(caller_code)) =
                (auth_skey, sealed, caller_code)
            else {
                return Ok(reply);
            };
            if !reply.ok() {
                return Ok(reply);
            }
            // The child must be one Duo lists for these keys; its name and host come from Duo.
            let (parent, children) = match self.child_accounts(host, ikey, &sealed).await? {
                Ok(found) => found,
                Err(refused) => return Ok(refused),
            };
            let Some(child) = children.into_iter().find(|c| c.account_id.0 == child_id) else {
                return Ok(FormReply::field(
                    "child_account_id",
                    "Duo does not list this child account for these keys: list the child \
                     accounts again and pick one.",
                ));
            };
            let api_host = parent.child_base_url(&child);
            if crate::duo::client::parse_api_host(&api_host).is_err() {
                return Ok(FormReply::field(
                    "child_account_id",
                    format!("Duo gave this child account an unusable API hostname {api_host:?}."),
                ));
            }
            let row = DuoAccountRow {
                organization_id,
                api_host,
                auth_ikey: auth_ikey.to_owned(),
                auth_skey_sealed: auth_skey,
                directory: DuoDirectoryKeys::AccountsApi(MspChildAccess {
                    parent_api_host: host.to_owned(),
                    ikey: ikey.to_owned(),
                    skey_sealed: sealed,
                    account_id: child.account_id.0.clone(),
                    name: child.name.clone(),
                    api_hostname: child.api_hostname.clone(),
                }),
                caller_code,
            };
            let detail = format!(
                "MSP parent {host}, accounts ikey {ikey}, child account {:?} ({}); auth ikey \
                 {auth_ikey}; caller code via {}; secret keys replaced: {}",
                child.name,
                child.account_id,
                caller_code.as_str(),
                replaced_text(&replaced)
            );
            self.store_duo(admin, &row, detail).await?;
            return Ok(FormReply::done(format!(
                "Saved the Duo keys of {organization_name} (child account {}).",
                child.name
            )));
        }

        let api_host = host_field(fields, "api_host", &mut reply);
        let admin_ikey = ikey_field(fields, "admin_ikey", &mut reply);
        // Switching from an MSP parent to direct keys needs the Admin API secret key again.
        let stored = match existing.as_ref().map(|e| &e.directory) {
            Some(DuoDirectoryKeys::AdminApi { skey_sealed, .. }) if !skey_sealed.is_empty() => {
                Some(skey_sealed.clone())
            }
            _ => None,
        };
        let admin_skey = secret_field(
            self,
            fields,
            "admin_skey",
            stored,
            "admin",
            &mut replaced,
            &mut reply,
        );
        let (Some(auth_skey), Some(admin_skey), Some(caller_code)) =
            (auth_skey, admin_skey, caller_code)
        else {
            return Ok(reply);
        };
        if !reply.ok() {
            return Ok(reply);
        }
        let mut row = DuoAccountRow::direct(
            organization_id,
            api_host,
            auth_ikey,
            auth_skey,
            admin_ikey,
            admin_skey,
        );
        row.caller_code = caller_code;
        let detail = format!(
            "api host {api_host}; auth ikey {auth_ikey}; admin ikey {admin_ikey}; caller code \
             via {}; secret keys replaced: {}",
            caller_code.as_str(),
            replaced_text(&replaced)
        );
        self.store_duo(admin, &row, detail).await?;
        Ok(FormReply::done(format!(
            "Saved the Duo keys of {organization_name}."
        )))
    }

    async fn store_duo(
        &self,
        admin: &UserRecord,
        row: &DuoAccountRow,
        detail: String,
    ) -> BackendResult<()> {
        let audit = AuditEntry {
            actor: admin.display_name.clone(),
            action: "Duo account saved".into(),
            organization_id: Some(row.organization_id),
            detail: Some(detail),
            ..Default::default()
        };
        self.store
            .save_duo_account_audited(row, &audit)
            .await
            .map_err(internal)
    }

    /// The Auth API check and one page of users through whichever directory keys are stored.
    pub(super) async fn test_duo_account(&self, organization_id: i64) -> BackendResult<TestReply> {
        let row = self
            .store
            .duo_account(organization_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Save the Duo keys of this organization first."))?;
        let auth = self.duo_client(&row.api_host, &row.auth_ikey, &row.auth_skey_sealed)?;
        let directory = directory_client(&row.api_host, &row.directory, &self.key, &self.duo_http)
            .map_err(|e| invalid(format!("The stored keys cannot be used: {e}")))?
            .with_retry_policy(quick_retry());
        let label = match &row.directory {
            DuoDirectoryKeys::AdminApi { .. } => "Admin API".to_owned(),
            DuoDirectoryKeys::AccountsApi(c) => {
                format!("Accounts API (child account {:?})", c.name)
            }
        };
        let mut lines = Vec::new();
        let mut ok = true;
        match auth.check().await {
            Ok(_) => lines.push("Auth API: keys accepted (/auth/v2/check).".to_owned()),
            Err(e) => {
                ok = false;
                lines.push(format!("Auth API: {e}"));
            }
        }
        match directory.users_page(1, 0).await {
            Ok(page) => lines.push(format!(
                "{label}: keys accepted; {} user(s) in the account.",
                page.total_objects.unwrap_or(page.users.len() as u64)
            )),
            Err(e) => {
                ok = false;
                lines.push(format!("{label}: {e}"));
            }
        }
        if row.caller_code == CallerCodeVia::VerificationPush {
            lines.push(
                "Caller code: Duo verification push. Sending one needs the \"Grant write \
                 resource\" permission, which only a real push shows; without it deskproof \
                 sends the Auth API push with its own code."
                    .to_owned(),
            );
        }
        Ok(TestReply {
            ok,
            message: if ok {
                "Duo accepted both sets of keys.".into()
            } else {
                "Duo refused the keys.".into()
            },
            lines,
        })
    }
}

fn replaced_text(replaced: &[&str]) -> String {
    if replaced.is_empty() {
        "none".to_owned()
    } else {
        replaced.join(", ")
    }
}
