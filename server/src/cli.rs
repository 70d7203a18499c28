//! The command line: `serve`, `migrate`, `demo` and `user add`.
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use app::model::Role;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::startup::Application;
use crate::{auth, storage, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "deskproof",
    version,
    about = "Prove who submitted a help-desk ticket with Duo Push"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./deskproof.toml when it exists.
    #[arg(long, global = true, env = "DESKPROOF_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the web interface and the PSA webhooks.
    Serve,
    /// Create or upgrade the database, then exit.
    Migrate,
    /// Run the whole flow locally with the built-in simulators and demo accounts.
    Demo,
    /// Store organizations, Duo keys, ConnectWise connections and company mappings from a
    /// TOML file (see the README). Secrets are sealed with the master key.
    Setup { file: PathBuf },
    /// Re-seal every stored secret with a new master key, in one transaction. The new key
    /// file is created (mode 0600) when it does not exist. Stop the server first, and point
    /// `master_key_file` at the new file afterwards; links signed with the old key stop working.
    RotateKey {
        #[arg(long)]
        new_key_file: PathBuf,
    },
    /// Manage local accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a technician or an admin. The password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Technician)]
        role: RoleArg,
        /// Name shown in pages and notes. Default: the username.
        #[arg(long, default_value = "")]
        display_name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Technician,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Technician => Role::Technician,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init(config.log_format);
    match cli.command {
        Command::Serve => Application::build(config).await?.run().await?,
        Command::Migrate => {
            storage::connect(&config.database_url).await?;
            println!("database {} is up to date", config.database_url);
        }
        Command::Demo => crate::sim::demo::run(config).await?,
        Command::Setup { file } => {
            let setup = crate::setup::SetupFile::read(&file)?;
            let store = storage::connect(&config.database_url).await?;
            let key = crate::crypto::MasterKey::from_config(&config)?;
            let public_url = config.public_url_for(config.bind);
            for line in setup.apply(&store, &key, &public_url).await? {
                println!("{line}");
            }
            println!("stored {} organization(s)", setup.organization.len());
        }
        Command::RotateKey { new_key_file } => {
            if config.master_key.is_none() && !config.master_key_path().exists() {
                anyhow::bail!(
                    "no current master key: {} does not exist and master_key is not set; \
                     nothing to rotate",
                    config.master_key_path().display()
                );
            }
            let store = storage::connect(&config.database_url).await?;
            let old = crate::crypto::MasterKey::from_config(&config)?;
            let count = crate::rotate::run(&store, &old, &new_key_file).await?;
            println!(
                "re-sealed {count} secret(s) with the key in {}; set master_key_file to it \
                 (or replace the old key file with it) before starting deskproof again",
                new_key_file.display()
            );
        }
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    role,
                    display_name,
                },
        } => {
            let store = storage::connect(&config.database_url).await?;
            let password = read_password()?;
            let user =
                auth::create_user(&store, &username, &display_name, role.into(), &password).await?;
            println!(
                "created {} {:?} (id {})",
                user.role.as_str(),
                user.username,
                user.id
            );
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
