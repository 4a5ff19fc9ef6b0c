//! Composes the whole API on one port — one path prefix per service, plus `/healthz` and
//! `/metrics` — and serves it until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use axum::Router;
use nubo_common::http::{
    healthz, metrics_handler, record_metrics, request_context, Metrics, SharedMetrics,
};
use nubo_common::{Config, Db};
use nubo_compute::{ComputeService, ComputeSettings};
use nubo_identity::bootstrap::BootstrapReport;
use nubo_identity::keys::KeyRing;
use nubo_identity::{IdentityService, IdentitySettings};
use nubo_image::{ImageService, ImageSettings};
use nubo_network::{NetworkService, NetworkSettings};
use nubo_volume::{VolumeService, VolumeSettings};

/// Everything a running API holds.
pub struct Cloud {
    pub config: Config,
    pub identity: Arc<IdentityService>,
    pub image: Arc<ImageService>,
    pub network: Arc<NetworkService>,
    pub compute: Arc<ComputeService>,
    pub volume: Arc<VolumeService>,
    pub metrics: SharedMetrics,
    pub bootstrap: BootstrapReport,
    /// The in-process agent's stop switch and task (`nubo up`), stopped first on shutdown.
    local_agent: std::sync::Mutex<Option<LocalAgent>>,
}

struct LocalAgent {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Where the Fernet keys live.
pub fn key_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("fernet-keys")
}

impl Cloud {
    /// Opens the database (migrating it), loads the keys, and bootstraps what is missing.
    pub async fn open(config: Config) -> anyhow::Result<Cloud> {
        let data_dir = config.server.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let db = Db::open(&config.database_url(), config.database.max_connections).await?;
        let keys = KeyRing::open(&key_dir(&data_dir))?;
        let settings = IdentitySettings::from_config(&config.identity, &config.public_url())?;
        let identity = IdentityService::new(db.clone(), settings, keys).await?;
        let bootstrap = identity
            .bootstrap(&config.identity.admin_password, &config.server.region)
            .await?;
        identity.spawn_maintenance();
        let image = open_image_service(&config, db.clone(), &bootstrap.admin_project_id).await?;
        let network_settings = NetworkSettings::from_config(&config.network, &config.public_url())?;
        let network = NetworkService::new(db.clone(), network_settings).await?;
        if config.network.create_defaults {
            network
                .ensure_default_networks(&bootstrap.admin_project_id, &config.network)
                .await?;
        }
        let volume = VolumeService::new(
            db.clone(),
            VolumeSettings::from_config(&config.volume),
            image.block_store().clone(),
            image.clone(),
        )
        .await?;
        let compute = open_compute_service(&config, db, &image, &network).await?;
        compute.set_volume_service(volume.clone());
        Ok(Cloud {
            config,
            identity,
            image,
            network,
            compute,
            volume,
            metrics: Arc::new(Metrics::default()),
            bootstrap,
            local_agent: std::sync::Mutex::new(None),
        })
    }

    /// The whole HTTP API.
    pub fn router(&self) -> Router {
        let identity = nubo_identity::http::router(self.identity.clone());
        let image = nubo_image::http::router(
            self.image.clone(),
            self.identity.clone(),
            &self.config.public_url(),
        );
        Router::new()
            .route("/healthz", get(healthz))
            .route(
                "/metrics",
                get(metrics_handler).with_state(self.metrics.clone()),
            )
            .route(
                "/identity/",
                get(|| async { axum::response::Redirect::permanent("/identity") }),
            )
            .nest("/identity", identity)
            .route("/image/", get(nubo_image::http::versions_at_root))
            .nest("/image", image)
            .route(
                "/network/",
                nubo_network::http::root_versions(self.network.clone()),
            )
            .nest(
                "/network",
                nubo_network::http::router(self.network.clone(), self.identity.clone()),
            )
            .route("/volume/", get(nubo_volume::http::versions_at_root))
            .nest(
                "/volume",
                nubo_volume::http::router(
                    self.volume.clone(),
                    self.identity.clone(),
                    &self.config.public_url(),
                ),
            )
            .route("/compute/", get(nubo_compute::http::versions_at_root))
            .nest(
                "/compute",
                nubo_compute::http::router(
                    self.compute.clone(),
                    self.identity.clone(),
                    &self.config.public_url(),
                ),
            )
            .nest(
                "/internal",
                nubo_compute::http::internal_router(self.compute.clone()),
            )
            .nest(
                "/metadata",
                nubo_compute::http::metadata_router(self.compute.clone()),
            )
            .route_layer(from_fn_with_state(self.metrics.clone(), record_metrics))
            .layer(from_fn(request_context))
    }

    /// Serves until SIGINT/SIGTERM, then finishes the requests in flight.
    pub async fn serve(&self) -> anyhow::Result<()> {
        let listen = self.config.server.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(%listen, public_url = %self.config.public_url(), "API listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown({
                let agent = self.local_agent.lock().ok().and_then(|mut a| a.take());
                let compute = self.compute.clone();
                async move {
                    shutdown_signal().await;
                    begin_shutdown(agent, &compute).await;
                }
            })
            .await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The Image service on `<data_dir>/blockstore`; uploads the bootstrap image (`image.bootstrap_image`,
/// public `tiny`) when no image of that name exists yet.
async fn open_image_service(
    config: &Config,
    db: Db,
    admin_project_id: &str,
) -> anyhow::Result<Arc<ImageService>> {
    let dir = config.server.data_dir.join("blockstore");
    let store = nubo_blockstore::LocalStore::open(&dir)
        .with_context(|| format!("cannot open the block store {}", dir.display()))?;
    let image = ImageService::new(
        db,
        Arc::new(store),
        ImageSettings::from_config(&config.image),
    )
    .await?;
    let path = &config.image.bootstrap_image;
    match image.bootstrap_image(path, admin_project_id).await {
        Ok(nubo_image::service::bootstrap::Bootstrapped::Uploaded(tiny)) => {
            tracing::info!(image_id = %tiny.id, path = %path.display(), "uploaded the bootstrap image tiny")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "bootstrap image not uploaded")
        }
    }
    Ok(image)
}

/// Compute, with the agent and metadata secrets it generates in the data dir on first start.
async fn open_compute_service(
    config: &Config,
    db: Db,
    image: &Arc<ImageService>,
    network: &Arc<NetworkService>,
) -> anyhow::Result<Arc<ComputeService>> {
    let data_dir = &config.server.data_dir;
    let agent_secret =
        nubo_compute::service::load_or_create_secret(&nubo_agent::setup::secret_path(config))
            .context("cannot make the agent secret")?;
    let metadata_secret =
        nubo_compute::service::load_or_create_secret(&data_dir.join("metadata-secret"))
            .context("cannot make the metadata secret")?;
    let settings = ComputeSettings::from_config(&config.compute, agent_secret, metadata_secret);
    let blockstore = image.block_store().clone();
    Ok(ComputeService::new(db, settings, image.clone(), network.clone(), blockstore).await?)
}

impl Cloud {
    /// Runs a node agent inside this process (what `nubo up` does): it talks to this API over
    /// the same internal HTTP API a remote agent uses, shares the block store handle, and
    /// stops with the process.
    pub async fn spawn_local_agent(&self) -> anyhow::Result<()> {
        let agent = nubo_agent::setup::build(&self.config, Some(self.image.block_store().clone()))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(host = agent.host(), driver = %self.config.agent.driver, "starting the local agent");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(agent.run(stop_rx));
        *self.local_agent.lock().expect("lock") = Some(LocalAgent { stop, task });
        Ok(())
    }
}

/// The first steps of a clean stop: the in-process agent stops (its VMs keep running and are
/// adopted on the next start), then Compute ends its agents' long-polls so that the graceful
/// HTTP shutdown only waits for ordinary requests.
async fn begin_shutdown(agent: Option<LocalAgent>, compute: &ComputeService) {
    if let Some(agent) = agent {
        let _ = agent.stop.send(true);
        let mut task = agent.task;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("the local agent did not stop within 2 s; aborting it");
            task.abort();
        }
    }
    compute.shut_down();
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
