//! `deskproof setup FILE`: stores organizations, their Duo keys, PSA connections (ConnectWise,
//! Autotask, Freshdesk, HaloPSA) and company mappings from a TOML file, sealing every secret
//! with the master key.
use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::crypto::MasterKey;
use crate::duo::DuoClient;
use crate::psa::source::{
    check_connection, AutotaskSecrets, AutotaskSettings, ConnectWiseSecrets, ConnectWiseSettings,
    FreshdeskSecrets, FreshdeskSettings, HaloSecrets, HaloSettings,
};
use crate::psa::PsaKind;
use crate::secret::Secret;
use crate::storage::{DuoAccountRow, DuoDirectoryKeys, MspChildAccess, NewPsaConnection, Store};
use crate::verify::ports::CallerCodeVia;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupFile {
    #[serde(default)]
    pub organization: Vec<OrganizationSetup>,
    #[serde(default)]
    pub connectwise: Vec<ConnectWiseSetup>,
    #[serde(default)]
    pub autotask: Vec<AutotaskSetup>,
    #[serde(default)]
    pub freshdesk: Vec<FreshdeskSetup>,
    #[serde(default)]
    pub halopsa: Vec<HaloSetup>,
}

/// An Autotask connection: the API user, its secret, the integration code and the ticket
/// webhook's `SecretKey`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutotaskSetup {
    pub name: String,
    pub username: String,
    pub integration_code: String,
    pub secret: String,
    pub webhook_secret: String,
    #[serde(default)]
    pub zone_lookup_url: Option<String>,
    #[serde(default)]
    pub note_type: Option<i64>,
    #[serde(default)]
    pub companies: Vec<CompanyMapping>,
}

/// A Freshdesk connection: the helpdesk URL, an agent's API key and the automation rule's
/// shared secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshdeskSetup {
    pub name: String,
    pub base_url: String,
    pub api_key: String,
    pub webhook_secret: String,
    #[serde(default)]
    pub webhook_header: Option<String>,
    #[serde(default)]
    pub companies: Vec<CompanyMapping>,
}

/// A HaloPSA connection: the API application's client credentials and the webhook's
/// credentials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaloSetup {
    pub name: String,
    pub auth_url: String,
    pub api_url: String,
    #[serde(default)]
    pub tenant: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub webhook_username: Option<String>,
    pub webhook_secret: String,
    #[serde(default)]
    pub companies: Vec<CompanyMapping>,
}

/// One connection of any kind other than ConnectWise, as it is stored.
struct OtherConnection<'a> {
    kind: PsaKind,
    name: &'a str,
    settings: serde_json::Value,
    secrets: String,
    companies: &'a [CompanyMapping],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSetup {
    pub name: String,
    pub duo: DuoSetup,
}

/// An organization's Duo account in one of two forms: its own Auth and Admin API applications
/// (`api_host`, `admin_ikey`, `admin_skey`), or the child account's Auth API application with
/// an MSP parent's Accounts API keys (`accounts_api_host`, `accounts_ikey`, `accounts_skey`,
/// `child_account_id`); the child's API hostname is then read from Duo's account list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuoSetup {
    #[serde(default)]
    pub api_host: Option<String>,
    pub auth_ikey: String,
    pub auth_skey: String,
    #[serde(default)]
    pub admin_ikey: Option<String>,
    #[serde(default)]
    pub admin_skey: Option<String>,
    #[serde(default)]
    pub accounts_api_host: Option<String>,
    #[serde(default)]
    pub accounts_ikey: Option<String>,
    #[serde(default)]
    pub accounts_skey: Option<String>,
    #[serde(default)]
    pub child_account_id: Option<String>,
    /// `push_details` (default) or `verification_push`.
    #[serde(default)]
    pub caller_code: Option<String>,
}

/// The two forms of [`DuoSetup`], checked.
enum DuoForm<'a> {
    Direct {
        api_host: &'a str,
        admin_ikey: &'a str,
        admin_skey: &'a str,
    },
    Msp {
        accounts_api_host: &'a str,
        accounts_ikey: &'a str,
        accounts_skey: &'a str,
        child_account_id: &'a str,
    },
}

impl DuoSetup {
    fn form(&self) -> anyhow::Result<DuoForm<'_>> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let msp = [
            ("accounts_api_host", &self.accounts_api_host),
            ("accounts_ikey", &self.accounts_ikey),
            ("accounts_skey", &self.accounts_skey),
            ("child_account_id", &self.child_account_id),
        ];
        let direct = [
            ("api_host", &self.api_host),
            ("admin_ikey", &self.admin_ikey),
            ("admin_skey", &self.admin_skey),
        ];
        let host = |name: &str, value: &str| -> anyhow::Result<()> {
            if crate::duo::client::parse_api_host(value).is_err() {
                bail!("duo.{name} {value:?} is not an API hostname");
            }
            Ok(())
        };
        if msp.iter().any(|(_, v)| v.is_some()) {
            if let Some((name, _)) = direct.iter().find(|(_, v)| v.is_some()) {
                bail!(
                    "duo.{name} does not go with an MSP parent's keys: the child account's \
                     API hostname comes from Duo's account list"
                );
            }
            if let Some((name, _)) = msp.iter().find(|(_, v)| given(v).is_none()) {
                bail!("duo.{name} is empty");
            }
            let value = |i: usize| given(msp[i].1).unwrap_or_default();
            host("accounts_api_host", value(0))?;
            return Ok(DuoForm::Msp {
                accounts_api_host: value(0),
                accounts_ikey: value(1),
                accounts_skey: value(2),
                child_account_id: value(3),
            });
        }
        if let Some((name, _)) = direct.iter().find(|(_, v)| given(v).is_none()) {
            bail!("duo.{name} is empty (or give an MSP parent's accounts_* keys and child_account_id)");
        }
        let value = |i: usize| given(direct[i].1).unwrap_or_default();
        host("api_host", value(0))?;
        Ok(DuoForm::Direct {
            api_host: value(0),
            admin_ikey: value(1),
            admin_skey: value(2),
        })
    }

    fn caller_code(&self) -> anyhow::Result<CallerCodeVia> {
        match self.caller_code.as_deref().map(str::trim) {
            None | Some("") => Ok(CallerCodeVia::PushDetails),
            Some(v) => CallerCodeVia::parse(v).with_context(|| {
                format!("duo.caller_code {v:?} is neither push_details nor verification_push")
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectWiseSetup {
    pub name: String,
    pub base_url: String,
    pub company_id: String,
    pub public_key: String,
    pub private_key: String,
    pub client_id: String,
    /// PSA company id → organization name.
    #[serde(default)]
    pub companies: Vec<CompanyMapping>,
    /// The ConnectWise web origins (e.g. `https://na.myconnectwise.net`) whose ticket screens
    /// may host the deskproof pod. Empty: the pod is off for this connection.
    #[serde(default)]
    pub pod_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyMapping {
    pub company_id: String,
    pub organization: String,
}

impl SetupFile {
    pub fn read(path: &Path) -> anyhow::Result<SetupFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: SetupFile =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        file.check()?;
        Ok(file)
    }

    fn other_connections(&self) -> anyhow::Result<Vec<OtherConnection<'_>>> {
        let mut out = Vec::new();
        for a in &self.autotask {
            out.push(OtherConnection {
                kind: PsaKind::Autotask,
                name: &a.name,
                settings: serde_json::to_value(AutotaskSettings {
                    username: a.username.clone(),
                    integration_code: a.integration_code.clone(),
                    zone_lookup_url: a.zone_lookup_url.clone(),
                    note_type: a.note_type,
                })?,
                secrets: serde_json::to_string(&AutotaskSecrets {
                    secret: a.secret.clone(),
                    webhook_secret: a.webhook_secret.clone(),
                })?,
                companies: &a.companies,
            });
        }
        for f in &self.freshdesk {
            out.push(OtherConnection {
                kind: PsaKind::Freshdesk,
                name: &f.name,
                settings: serde_json::to_value(FreshdeskSettings {
                    base_url: f.base_url.clone(),
                    webhook_header: f.webhook_header.clone(),
                })?,
                secrets: serde_json::to_string(&FreshdeskSecrets {
                    api_key: f.api_key.clone(),
                    webhook_secret: f.webhook_secret.clone(),
                })?,
                companies: &f.companies,
            });
        }
        for h in &self.halopsa {
            out.push(OtherConnection {
                kind: PsaKind::HaloPsa,
                name: &h.name,
                settings: serde_json::to_value(HaloSettings {
                    auth_url: h.auth_url.clone(),
                    api_url: h.api_url.clone(),
                    tenant: h.tenant.clone(),
                    client_id: h.client_id.clone(),
                    webhook_username: h.webhook_username.clone(),
                })?,
                secrets: serde_json::to_string(&HaloSecrets {
                    client_secret: h.client_secret.clone(),
                    webhook_secret: h.webhook_secret.clone(),
                })?,
                companies: &h.companies,
            });
        }
        Ok(out)
    }

    /// Checks the whole file before anything is stored.
    fn check(&self) -> anyhow::Result<()> {
        let names: HashSet<&str> = self.organization.iter().map(|o| o.name.as_str()).collect();
        if names.len() != self.organization.len() {
            bail!("an organization name appears twice");
        }
        for o in &self.organization {
            let d = &o.duo;
            for (field, value) in [("auth_ikey", &d.auth_ikey), ("auth_skey", &d.auth_skey)] {
                if value.trim().is_empty() {
                    bail!("organization {:?}: duo.{field} is empty", o.name);
                }
            }
            d.form()
                .and_then(|_| d.caller_code())
                .with_context(|| format!("organization {:?}", o.name))?;
        }
        for c in &self.connectwise {
            url::Url::parse(&c.base_url)
                .with_context(|| format!("connectwise {:?}: base_url", c.name))?;
            for origin in &c.pod_origins {
                if let Err(e) = crate::verify::pod::parse_pod_origin(origin) {
                    bail!("connectwise {:?}: pod origin {e}", c.name);
                }
            }
            for m in &c.companies {
                if !names.contains(m.organization.as_str()) {
                    bail!(
                        "connectwise {:?}: company {} maps to {:?}, which is not an \
                         organization in this file",
                        c.name,
                        m.company_id,
                        m.organization
                    );
                }
            }
        }
        for c in self.other_connections()? {
            let what = format!("{} {:?}", c.kind, c.name);
            // Every secret is required: an empty webhook secret would let anyone in.
            if let Err(e) = check_connection(c.kind, &c.settings, &c.secrets) {
                bail!("{what}: {e}");
            }
            for m in c.companies {
                if !names.contains(m.organization.as_str()) {
                    bail!(
                        "{what}: company {} maps to {:?}, which is not an organization in \
                         this file",
                        m.company_id,
                        m.organization
                    );
                }
            }
        }
        Ok(())
    }

    /// Each organization's Duo account as it will be stored (organization id 0 until it is
    /// created). An MSP child is looked up in the parent's account list first: a child Duo
    /// does not list stops the setup before anything is stored.
    async fn duo_accounts(&self, key: &MasterKey) -> anyhow::Result<Vec<DuoAccountRow>> {
        let mut rows = Vec::new();
        for o in &self.organization {
            let d = &o.duo;
            let what = || format!("organization {:?}", o.name);
            let auth_ikey = d.auth_ikey.trim();
            let auth_skey = key.seal(d.auth_skey.trim());
            let mut row = match d.form().with_context(what)? {
                DuoForm::Direct {
                    api_host,
                    admin_ikey,
                    admin_skey,
                } => DuoAccountRow::direct(
                    0,
                    api_host,
                    auth_ikey,
                    auth_skey,
                    admin_ikey,
                    key.seal(admin_skey),
                ),
                DuoForm::Msp {
                    accounts_api_host,
                    accounts_ikey,
                    accounts_skey,
                    child_account_id,
                } => {
                    let parent = DuoClient::new(
                        accounts_api_host,
                        accounts_ikey,
                        Secret::new(accounts_skey),
                    )
                    .with_context(what)?;
                    let children = parent.list_child_accounts().await.with_context(|| {
                        format!("{}: listing the MSP parent's child accounts", what())
                    })?;
                    let child = children
                        .into_iter()
                        .find(|c| c.account_id.as_str() == child_account_id)
                        .with_context(|| {
                            format!(
                                "{}: Duo lists no child account {child_account_id:?} for these \
                                 Accounts API keys",
                                what()
                            )
                        })?;
                    DuoAccountRow {
                        organization_id: 0,
                        api_host: parent.child_base_url(&child),
                        auth_ikey: auth_ikey.to_owned(),
                        auth_skey_sealed: auth_skey,
                        directory: DuoDirectoryKeys::AccountsApi(MspChildAccess {
                            parent_api_host: accounts_api_host.to_owned(),
                            ikey: accounts_ikey.to_owned(),
                            skey_sealed: key.seal(accounts_skey),
                            account_id: child.account_id.0,
                            name: child.name,
                            api_hostname: child.api_hostname,
                        }),
                        caller_code: CallerCodeVia::PushDetails,
                    }
                }
            };
            row.caller_code = d.caller_code().with_context(what)?;
            rows.push(row);
        }
        Ok(rows)
    }

    /// Stores everything; returns one line per PSA connection with the URL its PSA calls.
    pub async fn apply(
        &self,
        store: &Store,
        key: &MasterKey,
        public_url: &str,
    ) -> anyhow::Result<Vec<String>> {
        let accounts = self.duo_accounts(key).await?;
        let mut orgs = std::collections::HashMap::new();
        for (o, mut account) in self.organization.iter().zip(accounts) {
            let id = store.create_organization(&o.name).await?;
            account.organization_id = id;
            store.save_duo_account(&account).await?;
            orgs.insert(o.name.as_str(), id);
        }
        let mut lines = Vec::new();
        for c in &self.connectwise {
            let settings = ConnectWiseSettings {
                base_url: c.base_url.clone(),
                company_id: c.company_id.clone(),
                public_key: c.public_key.clone(),
                client_id: c.client_id.clone(),
            };
            let secrets = serde_json::to_string(&ConnectWiseSecrets {
                private_key: c.private_key.clone(),
            })?;
            let mut settings = serde_json::to_value(settings)?;
            if !c.pod_origins.is_empty() {
                settings["pod_origins"] = serde_json::json!(c.pod_origins);
            }
            let id = store
                .create_psa_connection(&NewPsaConnection {
                    kind: "connectwise".into(),
                    name: c.name.clone(),
                    settings,
                    secrets_sealed: key.seal(&secrets),
                })
                .await?;
            for m in &c.companies {
                let org = orgs
                    .get(m.organization.as_str())
                    .copied()
                    .unwrap_or_default();
                store.map_company(id, &m.company_id, org).await?;
            }
            lines.push(format!(
                "{}: callback URL {}/hooks/connectwise/{id}?recordId=",
                c.name,
                public_url.trim_end_matches('/')
            ));
        }
        for c in self.other_connections()? {
            let id = store
                .create_psa_connection(&NewPsaConnection {
                    kind: c.kind.as_str().into(),
                    name: c.name.to_owned(),
                    settings: c.settings,
                    secrets_sealed: key.seal(&c.secrets),
                })
                .await?;
            for m in c.companies {
                let org = orgs
                    .get(m.organization.as_str())
                    .copied()
                    .unwrap_or_default();
                store.map_company(id, &m.company_id, org).await?;
            }
            lines.push(format!(
                "{}: webhook URL {}/hooks/{}/{id}",
                c.name,
                public_url.trim_end_matches('/'),
                c.kind
            ));
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = r#"
[[organization]]
name = "Contoso"
[organization.duo]
api_host = "api-1.duosecurity.com"
auth_ikey = "DIAUTH"
auth_skey = "a"
admin_ikey = "DIADMIN"
admin_skey = "b"
"#;

    const PSAS: &str = r#"
[[autotask]]
name = "AT"
username = "api@example.net"
integration_code = "CODE"
secret = "s"
webhook_secret = "w"
companies = [{ company_id = "250", organization = "Contoso" }]

[[freshdesk]]
name = "FD"
base_url = "https://examplemsp.freshdesk.com"
api_key = "k"
webhook_secret = "w"
companies = [{ company_id = "43000000250", organization = "Contoso" }]

[[halopsa]]
name = "Halo"
auth_url = "https://examplemsp.halopsa.com/auth"
api_url = "https://examplemsp.halopsa.com/api"
client_id = "c"
client_secret = "s"
webhook_secret = "w"
companies = [{ company_id = "25", organization = "Contoso" }]
"#;

    fn parse(text: &str) -> anyhow::Result<SetupFile> {
        let file: SetupFile = toml::from_str(text)?;
        file.check()?;
        Ok(file)
    }

    fn file(pod_origins: &str) -> anyhow::Result<SetupFile> {
        parse(&format!(
            r#"
[[connectwise]]
name = "CW"
base_url = "https://api-na.myconnectwise.net/v4_6_release/apis/3.0"
company_id = "examplemsp"
public_key = "pub"
private_key = "priv"
client_id = "id"
pod_origins = {pod_origins}
"#
        ))
    }

    const MSP_ORG: &str = r#"
[[organization]]
name = "Northwind"
[organization.duo]
auth_ikey = "DICHILDAUTH"
auth_skey = "c"
accounts_api_host = "api-parent.duosecurity.com"
accounts_ikey = "DIACCOUNTS"
accounts_skey = "p"
child_account_id = "DACHILD"
caller_code = "verification_push"
"#;

    #[test]
    fn an_msp_child_form_is_read_with_its_caller_code_setting() {
        let file = parse(MSP_ORG).expect("valid");
        let duo = &file.organization[0].duo;
        assert!(matches!(
            duo.form(),
            Ok(DuoForm::Msp {
                child_account_id: "DACHILD",
                ..
            })
        ));
        assert_eq!(
            duo.caller_code().expect("setting"),
            CallerCodeVia::VerificationPush
        );
        let direct = parse(ORG).expect("valid");
        assert_eq!(
            direct.organization[0].duo.caller_code().expect("default"),
            CallerCodeVia::PushDetails
        );
    }

    #[test]
    fn mixed_incomplete_or_unknown_duo_forms_are_refused() {
        for (text, expected) in [
            (
                MSP_ORG.replace("caller_code", "api_host = \"api-1.duosecurity.com\"\n#"),
                "duo.api_host does not go with",
            ),
            (
                MSP_ORG.replace("child_account_id = \"DACHILD\"", ""),
                "duo.child_account_id is empty",
            ),
            (
                MSP_ORG.replace("\"verification_push\"", "\"sms\""),
                "neither push_details nor verification_push",
            ),
            (
                ORG.replace("admin_skey = \"b\"", ""),
                "duo.admin_skey is empty",
            ),
            (
                ORG.replace("api-1.duosecurity.com", "https://x/path"),
                "not an API hostname",
            ),
        ] {
            let err = parse(&text)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn every_psa_kind_is_read_and_checked() {
        let file = parse(&format!("{ORG}{PSAS}")).expect("valid");
        let kinds: Vec<PsaKind> = file
            .other_connections()
            .expect("connections")
            .iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(
            kinds,
            [PsaKind::Autotask, PsaKind::Freshdesk, PsaKind::HaloPsa]
        );
    }

    #[test]
    fn an_empty_webhook_secret_is_refused() {
        let text =
            format!("{ORG}{PSAS}").replacen("webhook_secret = \"w\"", "webhook_secret = \" \"", 1);
        let err = parse(&text).expect_err("refused").to_string();
        assert!(err.contains("webhook_secret is empty"), "{err}");
    }

    #[test]
    fn a_mapping_to_an_unknown_organization_is_refused() {
        let err = parse(PSAS).expect_err("refused").to_string();
        assert!(err.contains("not an organization"), "{err}");
    }

    #[test]
    fn a_bad_url_is_refused() {
        let text = format!("{ORG}{PSAS}").replace("https://examplemsp.freshdesk.com", "not a url");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn pod_origins_must_be_bare_origins() {
        let ok = file(r#"["https://na.myconnectwise.net"]"#).map(|f| f.connectwise);
        assert_eq!(
            ok.map(|c| c[0].pod_origins.clone()).ok(),
            Some(vec!["https://na.myconnectwise.net".to_owned()])
        );
        for bad in [
            r#"["https://na.myconnectwise.net/v4_6_release"]"#,
            r#"["javascript:alert(1)"]"#,
            r#"["na.myconnectwise.net"]"#,
        ] {
            let err = file(bad)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(err.contains("pod"), "{bad}: {err}");
        }
    }
}
