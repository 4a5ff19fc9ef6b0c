//! A whole compute control plane in one process on fakes, for integration tests and
//! `nubo bench servers`: an in-memory-ish SQLite (a temp file, WAL), Images with the `tiny`
//! image in a [`MemoryStore`], Networking with a large private network, Compute, the HTTP API
//! (`/compute`, `/internal`) on a loopback port with static tokens, and N agents, each with its
//! own [`FakeHypervisor`] and [`FakeHost`], talking to the API over the real internal HTTP API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use nubo_blockstore::{BlockStore, MemoryStore};
use nubo_common::config::{ComputeConfig, NetworkConfig};
use nubo_common::testing::{project_caller, StaticValidator};
use nubo_common::{Caller, Db};
use nubo_compute::{ComputeService, ComputeSettings};
use nubo_hypervisor::{Accel, FakeHypervisor, HostInfo, Hypervisor};
use nubo_image::{ImageService, ImageSettings};
use nubo_network::{NetworkService, NetworkSettings};
use serde_json::{json, Value};
use tokio::sync::watch;

pub use nubo_common::testing::HANG_LIMIT;

use crate::{Agent, AgentSettings, FakeHost, HttpControlPlane};

/// The admin token of the fleet's project.
pub const ADMIN_TOKEN: &str = "admin-token";
/// A member of the fleet's project.
pub const MEMBER_TOKEN: &str = "member-token";
/// A member of another project.
pub const OTHER_TOKEN: &str = "other-token";
pub const PROJECT: &str = "p-fleet";

/// One fake hypervisor host.
pub struct FakeNode {
    pub name: String,
    pub hv: Arc<FakeHypervisor>,
    pub host: Arc<FakeHost>,
    stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    /// Stops the agent (its VMs stay in the fake).
    pub async fn stop(self) -> (Arc<FakeHypervisor>, Arc<FakeHost>) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        (self.hv, self.host)
    }
}

/// The control plane and its nodes.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub compute: Arc<ComputeService>,
    pub network: Arc<NetworkService>,
    pub image: Arc<ImageService>,
    pub store: MemoryStore,
    /// The block store in use (`store`, unless the fleet was started on another one).
    pub blockstore: Arc<dyn BlockStore>,
    pub image_id: String,
    pub private_network: String,
    pub nodes: Vec<FakeNode>,
    server: tokio::task::JoinHandle<()>,
}

/// Sizes of the fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub hosts: usize,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    pub compute: ComputeConfig,
}

impl Default for FleetSpec {
    fn default() -> Self {
        let compute = ComputeConfig {
            quota_instances: -1,
            quota_cores: -1,
            quota_ram: -1,
            ..ComputeConfig::default()
        };
        FleetSpec {
            hosts: 1,
            vcpus: 8,
            memory_mb: 16384,
            disk_gb: 1000,
            compute,
        }
    }
}

fn caller(token: &str) -> Caller {
    match token {
        ADMIN_TOKEN => project_caller("admin-user", PROJECT, &["admin", "member", "reader"]),
        MEMBER_TOKEN => project_caller("member-user", PROJECT, &["member", "reader"]),
        _ => project_caller("other-user", "p-other", &["member", "reader"]),
    }
}

impl Fleet {
    pub async fn start(spec: FleetSpec) -> Fleet {
        Fleet::start_on(spec, None, vec![0u8; 1 << 20]).await
    }

    /// A fleet on `blockstore` (a [`MemoryStore`] when `None`) whose `tiny` image holds `image`.
    pub async fn start_on(
        spec: FleetSpec,
        blockstore: Option<Arc<dyn BlockStore>>,
        image_bytes: Vec<u8>,
    ) -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(
            &format!("sqlite://{}", dir.path().join("nubo.db").display()),
            8,
        )
        .await
        .expect("db");
        let store = MemoryStore::new();
        let blockstore: Arc<dyn BlockStore> = blockstore.unwrap_or_else(|| Arc::new(store.clone()));
        let image = ImageService::new(db.clone(), blockstore.clone(), ImageSettings::default())
            .await
            .expect("image service");
        let admin = caller(ADMIN_TOKEN);
        let record = image
            .create_image(&admin, json!({"name": "tiny", "disk_format": "raw", "container_format": "bare", "visibility": "public"}))
            .await
            .expect("image record");
        let size = image_bytes.len() as u64;
        let data: nubo_blockstore::ByteStream =
            Box::pin(futures::stream::iter(vec![Ok(Bytes::from(image_bytes))]));
        image
            .upload_image(&admin, record.id.as_str(), Some(size), data)
            .await
            .expect("image upload");
        let net_config = NetworkConfig {
            private_cidr: "10.0.0.0/20".into(),
            private_v6_cidr: String::new(),
            public_v6_cidr: String::new(),
            quota_port: -1,
            ..NetworkConfig::default()
        };
        let network = NetworkService::new(
            db.clone(),
            NetworkSettings::from_config(&net_config, "http://localhost").expect("settings"),
        )
        .await
        .expect("network service");
        network
            .ensure_default_networks(PROJECT, &net_config)
            .await
            .expect("default networks");
        let ctx = nubo_network::service::Ctx::system(PROJECT);
        let nets = network
            .list_networks(
                &ctx,
                &nubo_network::query::ListParams::default(),
                &nubo_network::query::LinkBase { url: "" },
            )
            .await
            .expect("networks");
        let private_network = nets
            .items
            .iter()
            .find(|n| n["name"] == "private")
            .and_then(|n| n["id"].as_str())
            .expect("private network")
            .to_string();
        let settings = ComputeSettings::from_config(
            &spec.compute,
            "fleet-secret".into(),
            "fleet-metadata".into(),
        );
        let compute = ComputeService::new(
            db,
            settings,
            image.clone(),
            network.clone(),
            blockstore.clone(),
        )
        .await
        .expect("compute service");
        let validator = StaticValidator::new()
            .with(ADMIN_TOKEN, caller(ADMIN_TOKEN))
            .with(MEMBER_TOKEN, caller(MEMBER_TOKEN))
            .with(OTHER_TOKEN, caller(OTHER_TOKEN))
            .shared();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new()
            .nest(
                "/compute",
                nubo_compute::http::router(compute.clone(), validator, &format!("http://{addr}")),
            )
            .nest(
                "/internal",
                nubo_compute::http::internal_router(compute.clone()),
            )
            .nest(
                "/metadata",
                nubo_compute::http::metadata_router(compute.clone()),
            )
            .layer(axum::middleware::from_fn(
                nubo_common::http::request_context,
            ));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let mut fleet = Fleet {
            dir,
            addr,
            compute,
            network,
            image,
            store,
            blockstore,
            image_id: record.id.to_string(),
            private_network,
            nodes: Vec::new(),
            server,
        };
        for i in 0..spec.hosts {
            fleet.add_node(&format!("fake-{i:02}"), &spec).await;
        }
        fleet
    }

    /// Starts an agent for host `name` (a fresh fake hypervisor).
    pub async fn add_node(&mut self, name: &str, spec: &FleetSpec) {
        let hv = Arc::new(FakeHypervisor::with_host(HostInfo {
            hostname: name.into(),
            arch: "x86_64".into(),
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mb,
            disk_gib: spec.disk_gb,
            disk_free_gib: spec.disk_gb,
            hypervisor_type: "fake".into(),
            hypervisor_version: 1000,
            accel: Accel::Tcg,
        }));
        let host = Arc::new(FakeHost::default());
        let node = self.start_agent(name, hv, host).await;
        self.nodes.push(node);
    }

    /// Starts an agent for `name` on an existing fake (an agent restart).
    pub async fn start_agent(
        &self,
        name: &str,
        hv: Arc<FakeHypervisor>,
        host: Arc<FakeHost>,
    ) -> FakeNode {
        let control = Arc::new(
            HttpControlPlane::new(&format!("http://{}", self.addr), "fleet-secret")
                .expect("control"),
        );
        let mut settings = AgentSettings::new(name, self.dir.path().join(name));
        settings.long_poll = Duration::from_secs(5);
        let hv_dyn: Arc<dyn Hypervisor> = hv.clone();
        let agent = Agent::new(
            settings,
            hv_dyn,
            self.blockstore.clone(),
            host.clone(),
            control,
        );
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(agent.run(rx));
        FakeNode {
            name: name.into(),
            hv,
            host,
            stop,
            task,
        }
    }

    /// Starts an agent with any hypervisor and host plumbing (the QEMU benchmark); returns its
    /// stop switch and task.
    pub fn start_custom_agent(
        &self,
        name: &str,
        hv: Arc<dyn Hypervisor>,
        plumbing: Arc<dyn crate::HostPlumbing>,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let control = Arc::new(
            HttpControlPlane::new(&format!("http://{}", self.addr), "fleet-secret")
                .expect("control"),
        );
        let mut settings = AgentSettings::new(name, self.dir.path().join(name));
        settings.long_poll = Duration::from_secs(5);
        settings.stop_timeout = Duration::from_secs(10);
        let agent = Agent::new(settings, hv, self.blockstore.clone(), plumbing, control);
        let (stop, rx) = watch::channel(false);
        (stop, tokio::spawn(agent.run(rx)))
    }

    /// Waits until every node registered.
    pub async fn wait_registered(&self) {
        let deadline = tokio::time::Instant::now() + HANG_LIMIT;
        while tokio::time::Instant::now() < deadline {
            let (_, v) = self
                .call("GET", "/compute/v2.1/os-hypervisors", ADMIN_TOKEN, None)
                .await;
            if v["hypervisors"].as_array().map(|a| a.len()) == Some(self.nodes.len()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("hosts did not register");
    }

    /// One HTTP call to the fleet's API at compute 2.79; returns status and JSON (Null when
    /// empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_at(method, path, token, "2.79", body).await
    }

    /// [`Self::call`] at compute microversion `version`.
    pub async fn call_at(
        &self,
        method: &str,
        path: &str,
        token: &str,
        version: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, bytes) = self.call_raw(method, path, token, version, body).await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// [`Self::call_at`] without parsing: status and the body's bytes as received (what a
    /// latency figure "over HTTP" measures).
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        version: &str,
        body: Option<Value>,
    ) -> (u16, Bytes) {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("x-auth-token", token)
            .header("openstack-api-version", format!("compute {version}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, bytes)
    }

    /// `POST /servers` for one server on the private network; returns its id.
    pub async fn create_server(&self, name: &str, flavor: &str) -> Result<String, (u16, Value)> {
        let body = json!({"server": {"name": name, "imageRef": self.image_id, "flavorRef": flavor,
            "networks": [{"uuid": self.private_network}]}});
        let (status, v) = self
            .call("POST", "/compute/v2.1/servers", MEMBER_TOKEN, Some(body))
            .await;
        if status == 202 {
            Ok(v["server"]["id"].as_str().unwrap_or_default().to_string())
        } else {
            Err((status, v))
        }
    }

    /// Polls a server every 50 ms until its status is one of `statuses` (or it is gone: "GONE").
    /// Gives up after [`HANG_LIMIT`] and returns the status it last saw: the limit only tells
    /// a hung test from a slow machine, it is not a speed test.
    pub async fn wait_status(&self, id: &str, statuses: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + HANG_LIMIT;
        loop {
            let (code, v) = self
                .call(
                    "GET",
                    &format!("/compute/v2.1/servers/{id}"),
                    ADMIN_TOKEN,
                    None,
                )
                .await;
            let status = if code == 404 {
                "GONE".to_string()
            } else {
                v["server"]["status"].as_str().unwrap_or("").to_string()
            };
            if statuses.contains(&status.as_str()) || tokio::time::Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Self::wait_status`] for many servers with one list call per round (200 pollers of
    /// their own would be most of the API's load): each server's last status, "GONE" when
    /// it is not listed.
    pub async fn wait_all_status(
        &self,
        ids: &[String],
        statuses: &[&str],
    ) -> HashMap<String, String> {
        let deadline = tokio::time::Instant::now() + HANG_LIMIT;
        loop {
            let (_, v) = self
                .call(
                    "GET",
                    "/compute/v2.1/servers/detail?all_tenants=1",
                    ADMIN_TOKEN,
                    None,
                )
                .await;
            let listed: HashMap<&str, &str> = v["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s["id"].as_str()?, s["status"].as_str()?)))
                .collect();
            let now: HashMap<String, String> = ids
                .iter()
                .map(|id| {
                    let status = listed.get(id.as_str()).copied().unwrap_or("GONE");
                    (id.clone(), status.to_string())
                })
                .collect();
            let done = now.values().all(|s| statuses.contains(&s.as_str()));
            if done || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ports with a `compute:nova` owner.
    pub async fn server_ports(&self) -> usize {
        let state = self
            .network
            .desired_state(None)
            .await
            .expect("network state");
        state
            .ports
            .iter()
            .filter(|p| p.device_owner == "compute:nova")
            .count()
    }

    /// Rows per table of the fleet's database (every service's tables).
    pub async fn table_rows(&self) -> std::collections::BTreeMap<String, i64> {
        let pool = self.compute.db().pool();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(pool)
        .await
        .expect("tables");
        let mut rows = std::collections::BTreeMap::new();
        for t in tables {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{t}\""))
                .fetch_one(pool)
                .await
                .expect("count");
            rows.insert(t, n);
        }
        rows
    }

    /// Rows in `compute_servers`.
    pub async fn server_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM compute_servers")
            .fetch_one(self.compute.db().pool())
            .await
            .expect("count")
    }

    pub async fn stop(self) {
        for n in self.nodes {
            n.stop().await;
        }
        self.server.abort();
    }
}
