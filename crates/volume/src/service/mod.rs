//! The Block Storage service: every Cinder operation as a method on [`VolumeService`], with its
//! authorization (Cinder's default policy: project members act on their project's volumes,
//! readers look, admins do everything and see every project; another project's resource is a
//! 404), validation and orchestration. One file per resource: `volumes` (create with undo,
//! delete, list, show, update), `metadata` (of volumes and snapshots), `actions` (the
//! `/action` verbs), `snapshots`, `types` (volume types, extra specs, access, default types, QoS specs), `attachments`
//! (Cinder's 3.27+ API), `compute` (what Compute calls in process), `quotas`, `groups`,
//! `transfers`, `misc` (availability zones, services, hosts, pools, messages...), `query`
//! (filters, sorting, pagination), `views` (wire shapes per microversion), `copy` (exporting
//! a disk's data, the one command-line side effect).
//!
//! ## The volume status machine (Cinder's)
//!
//! ```text
//!   create ──> creating ──(clone / empty volume made)──> available ──delete──> deleting ──> gone
//!                 │ failure: block store object removed, message recorded          │ failure
//!                 v                                                                v
//!               error ──delete──> deleting ──> gone                         error_deleting
//!
//!   available ──reserve / attach (Compute, attachments API)──> reserved | attaching
//!   attaching ──agent hot-plugged it / os-attach / os-complete──> in-use
//!   in-use ──detach (Compute)──> detaching ──agent unplugged it──> available (in-use while
//!                                                                   other attachments remain)
//!   available | in-use ──extend──> extending ──> available | in-use     (error_extending)
//!   available | in-use ──os-volume_upload_image──> uploading ──> available | in-use
//!   available ──os-reimage──> downloading ──> available;  ──revert──> reverting ──> available
//!   available ──transfer create──> awaiting-transfer ──accept / delete──> available
//!   any ──os-reset_status (admin)──> any;  any ──os-force_delete (admin, not attached)──> gone
//! ```
//!
//! Block store work on one volume is serialized in this process (`lock_volume`); the status
//! changes themselves are compare-and-set in write transactions, so a second API node sees a
//! volume busy (`extending`, `uploading`...) and refuses as Cinder does (400 "Invalid volume").

pub mod actions;
pub mod attachments;
pub mod compute;
pub mod copy;
pub mod groups;
pub mod input;
pub mod metadata;
pub mod misc;
pub mod query;
pub mod quotas;
pub mod snapshots;
pub mod transfers;
pub mod types;
pub mod views;
pub mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use nubo_blockstore::BlockStore;
use nubo_common::config::VolumeConfig;
use nubo_common::{Caller, Db, Error, Result};
use nubo_image::ImageService;
use parking_lot::{Mutex, RwLock};
use sqlx::Sqlite;

use crate::microversion::Microversion;
use crate::store;

/// The settings Block Storage runs with (from `[volume]`).
#[derive(Debug, Clone)]
pub struct VolumeSettings {
    /// The availability zone volumes live in (Cinder's `storage_availability_zone`).
    pub availability_zone: String,
    /// The name of the volume type volumes get when none is asked for.
    pub default_type: String,
    /// The name of the one backend (`os-vol-host-attr:host` is `<host>@<backend>#<backend>`).
    pub backend_name: String,
    /// The host name the volume service reports.
    pub host: String,
    pub quotas: quotas::QuotaDefaults,
    /// How long an online extend may take the agent before the volume goes to `error_extending`.
    pub extend_timeout: Duration,
    /// How long user messages are kept.
    pub message_ttl: Duration,
}

impl VolumeSettings {
    pub fn from_config(config: &VolumeConfig) -> VolumeSettings {
        VolumeSettings {
            availability_zone: config.availability_zone.clone(),
            default_type: config.default_volume_type.clone(),
            backend_name: config.backend_name.clone(),
            host: if config.host.is_empty() {
                "nubo".into()
            } else {
                config.host.clone()
            },
            quotas: quotas::QuotaDefaults::from_config(config),
            extend_timeout: Duration::from_secs(config.extend_timeout.max(1)),
            message_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }

    pub fn for_tests() -> VolumeSettings {
        let mut s = VolumeSettings::from_config(&VolumeConfig::default());
        s.extend_timeout = Duration::from_secs(5);
        s
    }

    /// `host@backend#pool`, Cinder's volume host string.
    pub fn volume_host(&self) -> String {
        format!("{}@{}#{}", self.host, self.backend_name, self.backend_name)
    }
}

/// A step of a multi-step operation, for fault injection in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Making the block store object of a new volume.
    CreateData,
    /// Recording the new volume as available after its data was made.
    CreateRecord,
    /// Taking the block store snapshot of a snapshot.
    SnapshotData,
    /// Recording the snapshot as available.
    SnapshotRecord,
    /// Growing the block store volume.
    Extend,
    /// Streaming a volume into a new image.
    Upload,
    /// Deleting the block store object of a volume.
    DeleteData,
}

/// Who asks, at which microversion, and where links point: what every service call gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub caller: Caller,
    pub mv: Microversion,
    /// `http://host:port` as the client addressed the API.
    pub base: String,
    pub request_id: String,
}

impl Ctx {
    pub fn admin(&self) -> bool {
        self.caller.is_admin()
    }

    /// The project the request acts in (a 401 for unscoped tokens).
    pub fn project(&self) -> Result<&str> {
        self.caller.require_project()
    }

    /// A context for in-process callers (Compute) acting for `caller`.
    pub fn internal(caller: &Caller) -> Ctx {
        Ctx {
            caller: caller.clone(),
            mv: Microversion::latest(),
            base: String::new(),
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
        }
    }
}

pub struct VolumeService {
    pub(crate) db: Db,
    pub(crate) settings: VolumeSettings,
    pub(crate) store: Arc<dyn BlockStore>,
    pub(crate) image: Arc<ImageService>,
    pub(crate) exporter: RwLock<Arc<dyn copy::DiskExporter>>,
    pub(crate) compute: RwLock<Option<Weak<dyn compute::ComputeHooks>>>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Block store work in progress per volume (one owner per volume in this process).
    volume_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Injected failures: the next operation fails at this step (tests).
    faults: Mutex<HashMap<Step, u32>>,
    /// Background tasks in flight (creates, deletes, uploads), for tests to wait on.
    pub(crate) tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// A write transaction (`BEGIN IMMEDIATE`) holding this process's writer turn.
pub struct Tx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl VolumeService {
    /// Migrates the schema, creates the default volume type and the service records on first
    /// start, and fails the operations a crash interrupted (`creating` -> `error`, ...).
    pub async fn new(
        db: Db,
        settings: VolumeSettings,
        store: Arc<dyn BlockStore>,
        image: Arc<ImageService>,
    ) -> Result<Arc<VolumeService>> {
        db.migrate("volume", store::MIGRATIONS).await?;
        let service = Arc::new(VolumeService {
            db,
            settings,
            store,
            image,
            exporter: RwLock::new(Arc::new(copy::QemuImgExporter)),
            compute: RwLock::new(None),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            volume_locks: Mutex::new(HashMap::new()),
            faults: Mutex::new(HashMap::new()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
        });
        service.ensure_default_type().await?;
        service.ensure_services().await?;
        service.recover_interrupted().await?;
        Ok(service)
    }

    pub fn settings(&self) -> &VolumeSettings {
        &self.settings
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn block_store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// Replaces how disk data is exported (tests use [`copy::StreamExporter`]).
    pub fn set_exporter(&self, exporter: Arc<dyn copy::DiskExporter>) {
        *self.exporter.write() = exporter;
    }

    pub(crate) fn exporter(&self) -> Arc<dyn copy::DiskExporter> {
        self.exporter.read().clone()
    }

    /// Connects Compute: told when an attached volume grows or its attachments change.
    pub fn set_compute(&self, hooks: Weak<dyn compute::ComputeHooks>) {
        *self.compute.write() = Some(hooks);
    }

    pub(crate) fn compute_hooks(&self) -> Option<Arc<dyn compute::ComputeHooks>> {
        self.compute.read().as_ref().and_then(Weak::upgrade)
    }

    /// Makes the next `times` operations fail at `step` (tests of the undo paths).
    pub fn inject_failure(&self, step: Step, times: u32) {
        self.faults.lock().insert(step, times);
    }

    pub(crate) fn injected(&self, step: Step) -> Result<()> {
        let mut faults = self.faults.lock();
        match faults.get_mut(&step) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(Error::internal(format!("injected failure at {step:?}")))
            }
            _ => Ok(()),
        }
    }

    /// Waits until every background task started so far has finished (tests, benchmarks).
    pub async fn settle(&self) {
        loop {
            let mut set = std::mem::take(&mut *self.tasks.lock());
            if set.is_empty() {
                return;
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// Runs `work` in the background, tracked for [`Self::settle`].
    pub(crate) fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(work);
    }

    /// A pooled connection for reads.
    pub(crate) async fn read(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        Ok(self.db.pool().acquire().await?)
    }

    /// Starts a write transaction: this process's turn, then SQLite's writer lock.
    pub(crate) async fn write(&self) -> Result<Tx> {
        let turn = self.write_lock.clone().lock_owned().await;
        let mut attempt = 0u64;
        loop {
            match self.db.pool().begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(Tx { tx, _turn: turn }),
                Err(err) if attempt < 50 && err.to_string().contains("locked") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The lock of block store work on one volume (held across the block store call only).
    pub(crate) async fn lock_volume(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.volume_locks.lock();
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        lock.lock_owned().await
    }

    /// Operations a crash cut short cannot be resumed: their volumes and snapshots go to
    /// the matching error status (an admin resets or deletes them), as Cinder's volume service
    /// does at start.
    async fn recover_interrupted(&self) -> Result<()> {
        let mut tx = self.write().await?;
        for (from, to) in [
            ("creating", "error"),
            ("deleting", "error_deleting"),
            ("extending", "error_extending"),
            ("downloading", "error"),
            ("reverting", "error"),
        ] {
            sqlx::query("UPDATE volume_volumes SET status = ? WHERE status = ?")
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE volume_volumes SET status = coalesce(previous_status, 'available') WHERE status = 'uploading'",
        )
        .execute(&mut *tx)
        .await?;
        for (from, to) in [("creating", "error"), ("deleting", "error_deleting")] {
            sqlx::query("UPDATE volume_snapshots SET status = ? WHERE status = ?")
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

/// Cinder's policy refusal.
pub(crate) fn policy(rule: &str) -> Error {
    Error::forbidden(format!("Policy doesn't allow {rule} to be performed."))
}

/// Reading needs a reader, member or admin role.
pub(crate) fn require_reader(ctx: &Ctx, rule: &str) -> Result<()> {
    let c = &ctx.caller;
    if c.is_admin() || c.has_role("reader") || c.has_role("member") {
        Ok(())
    } else {
        Err(policy(rule))
    }
}

/// Changing things needs the member role (or admin).
pub(crate) fn require_member(ctx: &Ctx, rule: &str) -> Result<()> {
    if ctx.caller.is_member() {
        Ok(())
    } else {
        Err(policy(rule))
    }
}

pub(crate) fn require_admin(ctx: &Ctx, rule: &str) -> Result<()> {
    if ctx.caller.is_admin() {
        Ok(())
    } else {
        Err(policy(rule))
    }
}

pub(crate) fn now() -> String {
    nubo_common::time::now_rfc3339()
}

/// Cinder's "Invalid volume" (400).
pub(crate) fn invalid_volume(reason: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("Invalid volume: {reason}"))
}

pub(crate) fn volume_not_found(id: &str) -> Error {
    Error::not_found(format!("Volume {id} could not be found."))
}

pub(crate) fn snapshot_not_found(id: &str) -> Error {
    Error::not_found(format!("Snapshot {id} could not be found."))
}

/// Maps a block store failure to the public error (the chain goes to the log only).
pub(crate) fn store_error(what: &str, e: nubo_blockstore::Error) -> Error {
    match e {
        nubo_blockstore::Error::NoSpace { .. } => Error::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "There is not enough space in the storage backend.",
        ),
        e => Error::internal(format!("{what}: {e}")),
    }
}

/// The block store object of a volume.
pub(crate) fn volume_object(id: &str) -> String {
    format!("volume-{id}")
}

/// The block store object of a snapshot.
pub(crate) fn snapshot_object(id: &str) -> String {
    format!("snapshot-{id}")
}

const GIB: u64 = 1 << 30;
