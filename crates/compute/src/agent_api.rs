//! The internal agent API: what a node agent (`nubo agent`) and the API say to each other.
//!
//! Every call carries `Authorization: Bearer <secret>`, the agent secret the API generates in
//! its data directory on first start (`<data_dir>/agent-secret`, mode 0600) and that operators
//! copy to each hypervisor host. A shared secret instead of a Keystone service token because an
//! agent must work before (and without) any Keystone user being made for it, never has to
//! renew anything, and an API node checks it without a database round trip; it only grants
//! this internal API, which is mounted apart from the public ones (`/internal`).
//!
//! ```text
//!   agent                                          API
//!   PUT  /internal/v1/hosts/{host}        HostRegistration  -> 200 HostRegistered
//!   GET  /internal/v1/hosts/{host}/desired?after=G&wait=S   -> 200 DesiredHost (long-poll:
//!        answers as soon as the host's generation passes G, or after S seconds)
//!   POST /internal/v1/hosts/{host}/observed  ObservedHost    -> 204 (also the heartbeat)
//!   POST /internal/v1/requests/{id}          RequestAnswer   -> 204 (console output ...)
//!   GET  /internal/v1/servers/{id}/config-drive              -> 200 ConfigDriveContent
//! ```

use serde::{Deserialize, Serialize};

/// The header value prefix of the agent secret.
pub const BEARER: &str = "Bearer ";

/// What an agent says about its host when it starts (and again after an API restart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRegistration {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    /// `QEMU` or `fake`.
    pub hypervisor_type: String,
    pub hypervisor_version: u64,
    /// The host's underlay address (VXLAN endpoint, migration traffic).
    pub host_ip: String,
    /// The availability zone the host belongs to; empty means the cloud's default.
    #[serde(default)]
    pub availability_zone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRegistered {
    pub host_id: String,
    /// Send an observed report at least this often (seconds): it is the heartbeat.
    pub heartbeat_interval: u64,
}

/// The power state the API wants a VM in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DesiredPower {
    Running,
    Shutdown,
    Paused,
    Suspended,
}

impl DesiredPower {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredPower::Running => "running",
            DesiredPower::Shutdown => "shutdown",
            DesiredPower::Paused => "paused",
            DesiredPower::Suspended => "suspended",
        }
    }

    pub fn parse(text: &str) -> DesiredPower {
        match text {
            "shutdown" => DesiredPower::Shutdown,
            "paused" => DesiredPower::Paused,
            "suspended" => DesiredPower::Suspended,
            _ => DesiredPower::Running,
        }
    }
}

/// One NIC of a desired VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DesiredNic {
    pub port_id: String,
    pub mac: String,
    /// The tap device (`tap` + the first 11 characters of the port id, as Nova names them).
    pub tap: String,
}

/// One VM as the API wants it on this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DesiredServer {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// The root disk's block store object (ask the block store to `describe` it right before
    /// starting QEMU).
    pub disk: String,
    pub nics: Vec<DesiredNic>,
    pub config_drive: bool,
    pub power: DesiredPower,
    /// Stop by pulling the plug instead of the ACPI button (cold snapshots).
    pub hard_stop: bool,
    /// A reboot is wanted while `reboot_seq > applied_reboot_seq`.
    pub reboot_seq: u64,
    pub reboot_hard: bool,
    pub applied_reboot_seq: u64,
    /// The VM must be destroyed and spawned again from a fresh spec (rebuild, after a
    /// snapshot changed the disk file) while `respawn_seq > applied_respawn_seq`.
    pub respawn_seq: u64,
    pub applied_respawn_seq: u64,
    /// Volumes attached besides the root disk (block storage, issue 7).
    #[serde(default)]
    pub volumes: Vec<DesiredVolume>,
}

/// A volume a VM must have (Block Storage's attachments made through Compute): hot-plugged as
/// a virtio-blk disk whose id is the volume id (its serial in the guest: the first 20
/// characters), unplugged when it leaves the desired state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DesiredVolume {
    pub volume_id: String,
    /// The block store object (ask the block store to `describe` it right before attaching).
    pub disk: String,
    pub read_only: bool,
    /// The volume's size: a running VM whose disk is smaller is grown to it (QMP
    /// `block_resize`: online extend).
    pub size_bytes: u64,
}

/// A question the API needs the agent to answer (the console log lives on the host).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRequest {
    pub id: String,
    pub server_id: String,
    /// `console`.
    pub kind: String,
    /// Console: the last `length` lines (None: all).
    pub length: Option<u64>,
}

/// Everything that should run on one host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DesiredHost {
    /// Increases whenever anything below changes.
    pub generation: u64,
    pub servers: Vec<DesiredServer>,
    #[serde(default)]
    pub requests: Vec<HostRequest>,
}

/// What the agent sees of one VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObservedServer {
    pub id: String,
    /// Nova's numeric power state: 0 nostate, 1 running, 3 paused, 4 shutdown, 6 crashed,
    /// 7 suspended.
    pub power_state: u8,
    pub reason: Option<String>,
    pub applied_reboot_seq: u64,
    pub applied_respawn_seq: u64,
    /// Ids of the VM's disks, root disk included (block storage, issue 7).
    #[serde(default)]
    pub disks: Vec<String>,
}

/// A VM the agent could not create (it does not exist on the host).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedServer {
    pub id: String,
    pub reason: String,
}

/// The agent's report: every VM on the host, and the spawns that failed. Also the heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ObservedHost {
    /// The generation of the desired state this report reflects.
    pub generation: u64,
    pub servers: Vec<ObservedServer>,
    #[serde(default)]
    pub failed: Vec<FailedServer>,
}

/// The agent's answer to a [`HostRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestAnswer {
    pub output: Option<String>,
    pub error: Option<String>,
}

/// The files of a config drive: path (`openstack/latest/meta_data.json`) -> base64 content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ConfigDriveContent {
    pub files: Vec<(String, String)>,
}

/// The tap device of a port, as Nova names it (`tap` + 11 characters: 14, under IFNAMSIZ).
pub fn tap_name(port_id: &str) -> String {
    let short: String = port_id.chars().take(11).collect();
    format!("tap{short}")
}
