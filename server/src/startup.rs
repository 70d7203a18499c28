//! Builds the running application: database, state, router and listener.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use leptos::prelude::LeptosOptions;
use tokio::net::TcpListener;

use crate::backend::AppBackend;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::http::{router, AppState, Services};
use crate::policy::Policy;
use crate::storage::{self, Store};
use crate::sweep::Sweeper;
use crate::verify::clients::StoredClients;
use crate::verify::directory::{DirectoryCache, DirectoryMode};
use crate::verify::flow::{Flow, FlowSettings};
use crate::verify::pod::PodGate;
use crate::verify::worker::Worker;

/// How often SQLite's write-ahead log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A bound, ready-to-serve deskproof. Tests build one on port 0.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    pub store: Store,
    pub addr: SocketAddr,
    pub flow: Flow,
    workers: Vec<tokio::task::AbortHandle>,
    worker: Worker,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = storage::connect(&config.database_url)
            .await
            .with_context(|| format!("opening the database {}", config.database_url))?;
        Application::with_store(config, store).await
    }

    pub async fn with_store(config: Config, store: Store) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("listening on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let leptos_options = LeptosOptions::builder()
            .output_name("deskproof")
            .site_root(config.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let key = MasterKey::from_config(&config)?;
        let mut clients = StoredClients::new(store.clone(), key.clone())?;
        if config.directory == DirectoryMode::Cached {
            let cache = DirectoryCache::new(Duration::from_secs(config.directory_refresh_secs));
            cache.spawn_refresher();
            clients.directories = Some(cache);
        }
        let psa_http = clients.psa_http.clone();
        let flow = Flow {
            store: store.clone(),
            clients: Arc::new(clients),
            key,
            settings: FlowSettings {
                public_url: config.public_url_for(addr),
                policy: Policy::builtin(&config),
                retry_base_ms: config.note_retry_base_ms,
                matching_lease: std::time::Duration::from_secs(config.matching_lease_secs),
            },
        };
        // One process owns the SQLite file: leases left by a previous run are stale.
        store.release_leases(None).await?;
        let worker = Worker::new(flow.clone(), Duration::from_secs(config.job_lease_secs));
        let mut workers = worker.spawn(config.workers, config.push_pollers);
        if config.sweep_interval_secs > 0 {
            let sweeper = Sweeper::new(
                store.clone(),
                flow.key.clone(),
                psa_http.clone(),
                worker.clone(),
                Duration::from_secs(config.sweep_interval_secs),
            );
            workers.push(sweeper.spawn());
        }
        workers.push(worker.spawn_checkpoints(CHECKPOINT_EVERY));
        let webhook_checkers = crate::http::hooks::WebhookCheckers::default();
        let state = AppState::new(Services {
            leptos_options,
            store: store.clone(),
            backend: Arc::new(AppBackend {
                store: store.clone(),
                flow: flow.clone(),
                worker: worker.clone(),
                pod: PodGate::new(flow.clone(), worker.clone())?,
                sign_ins: crate::auth::SignInThrottle::default(),
            }),
            config: Arc::new(config),
            flow: flow.clone(),
            worker: worker.clone(),
            psa_http: psa_http.clone(),
            webhook_checkers: webhook_checkers.clone(),
            admin: Arc::new(crate::admin::AdminService {
                store: store.clone(),
                key: flow.key.clone(),
                public_url: flow.settings.public_url.clone(),
                builtin_policy: flow.settings.policy.clone(),
                duo_http: crate::duo::DuoClient::http_client()?,
                psa_http: crate::psa::source::PsaHttp::new()?,
                webhook_checkers,
            }),
        });
        Ok(Application {
            listener,
            router: router(state),
            store,
            addr,
            flow,
            workers,
            worker,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then stops the background workers. Unfinished jobs
    /// stay in the database and are taken up by the next start.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.addr, "deskproof is serving");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        for worker in &self.workers {
            worker.abort();
        }
        self.worker.release().await;
        tracing::info!(address = %self.addr, "deskproof stopped");
        served
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
