//! `deskproof setup FILE`: stores organizations, their Duo keys, PSA connections (ConnectWise,
//! Autotask, Freshdesk, HaloPSA) and company mappings from a TOML file, sealing every secret
//! with the master key.
use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::crypto::MasterKey;
use crate::psa::source::{
    check_connection, AutotaskSecrets, AutotaskSettings, ConnectWiseSecrets, ConnectWiseSettings,
    FreshdeskSecrets, FreshdeskSettings, HaloSecrets, HaloSettings,
};
use crate::psa::PsaKind;
use crate::storage::{DuoAccountRow, NewPsaConnection, Store};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuoSetup {
    pub api_host: String,
    pub auth_ikey: String,
    pub auth_skey: String,
    pub admin_ikey: String,
    pub admin_skey: String,
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
            for (field, value) in [
                ("api_host", &d.api_host),
                ("auth_ikey", &d.auth_ikey),
                ("auth_skey", &d.auth_skey),
                ("admin_ikey", &d.admin_ikey),
                ("admin_skey", &d.admin_skey),
            ] {
                if value.trim().is_empty() {
                    bail!("organization {:?}: duo.{field} is empty", o.name);
                }
            }
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

    /// Stores everything; returns one line per PSA connection with the URL its PSA calls.
    pub async fn apply(
        &self,
        store: &Store,
        key: &MasterKey,
        public_url: &str,
    ) -> anyhow::Result<Vec<String>> {
        let mut orgs = std::collections::HashMap::new();
        for o in &self.organization {
            let id = store.create_organization(&o.name).await?;
            store
                .save_duo_account(&DuoAccountRow {
                    organization_id: id,
                    api_host: o.duo.api_host.trim().to_owned(),
                    auth_ikey: o.duo.auth_ikey.trim().to_owned(),
                    auth_skey_sealed: key.seal(o.duo.auth_skey.trim()),
                    admin_ikey: o.duo.admin_ikey.trim().to_owned(),
                    admin_skey_sealed: key.seal(o.duo.admin_skey.trim()),
                })
                .await?;
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
