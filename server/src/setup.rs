//! `deskproof setup FILE`: stores organizations, their Duo keys, ConnectWise connections and
//! company mappings from a TOML file, sealing every secret with the master key.
use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::crypto::MasterKey;
use crate::psa::source::{ConnectWiseSecrets, ConnectWiseSettings};
use crate::storage::{DuoAccountRow, NewPsaConnection, Store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupFile {
    #[serde(default)]
    pub organization: Vec<OrganizationSetup>,
    #[serde(default)]
    pub connectwise: Vec<ConnectWiseSetup>,
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
                let url = url::Url::parse(origin)
                    .with_context(|| format!("connectwise {:?}: pod_origins", c.name))?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.origin().ascii_serialization() != origin.trim_end_matches('/')
                {
                    bail!(
                        "connectwise {:?}: pod origin {origin:?} must be scheme://host[:port] only",
                        c.name
                    );
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
        Ok(())
    }

    /// Stores everything; returns one line per ConnectWise connection with its callback URL.
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
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(pod_origins: &str) -> anyhow::Result<SetupFile> {
        let text = format!(
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
        );
        let file: SetupFile = toml::from_str(&text)?;
        file.check()?;
        Ok(file)
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
