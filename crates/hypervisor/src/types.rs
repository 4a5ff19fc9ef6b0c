//! Plain data: the VM spec the caller hands over, the status the driver reports, and the host
//! description. Every type here serializes to JSON (the QEMU driver keeps the spec of each VM in
//! its runtime dir so that a restarted agent can adopt it).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A VM's id: the Nova server id. It is also the guest's SMBIOS system UUID (what `dmidecode`
/// and cloud-init see as the instance id) and the name of the VM's runtime dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VmId(Uuid);

impl VmId {
    /// A fresh random id.
    pub fn new_random() -> VmId {
        VmId(Uuid::new_v4())
    }

    pub fn from_uuid(uuid: Uuid) -> VmId {
        VmId(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always the lowercase dashed form: it names directories and goes on QEMU's command line.
        write!(f, "{}", self.0.hyphenated())
    }
}

impl FromStr for VmId {
    type Err = Error;

    fn from_str(s: &str) -> Result<VmId> {
        Uuid::parse_str(s)
            .map(VmId)
            .map_err(|_| Error::invalid_spec(format!("{s:?} is not a UUID")))
    }
}

/// The format QEMU is told to open a disk with. It is always given: QEMU must never probe the
/// format of a guest-writable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    /// The name QEMU uses (the `driver` of the format node).
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// Where the bytes of a disk live. Mirrors the block store's `QemuLocation`, so the agent
/// converts one into the other field by field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskSource {
    /// A local file, absolute path. A qcow2 overlay names its backing file in its own header;
    /// QEMU opens the whole chain from this one path.
    File(PathBuf),
    /// A Ceph RBD image (needs QEMU's rbd block driver, Debian package `qemu-block-extra`).
    Rbd {
        pool: String,
        image: String,
        snapshot: Option<String>,
        user: Option<String>,
        conf: Option<PathBuf>,
    },
}

/// How QEMU opens one disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskSpec {
    pub source: DiskSource,
    pub format: DiskFormat,
    /// Opened read-only (images, snapshots, read-only volumes): the guest sees a read-only disk.
    pub read_only: bool,
}

impl DiskSpec {
    /// A local file disk.
    pub fn file(path: impl Into<PathBuf>, format: DiskFormat) -> DiskSpec {
        DiskSpec {
            source: DiskSource::File(path.into()),
            format,
            read_only: false,
        }
    }

    /// The same disk, read-only.
    pub fn read_only(mut self) -> DiskSpec {
        self.read_only = true;
        self
    }
}

/// A disk attached to a VM, as a virtio-blk device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Disk {
    /// The caller's name for the attachment: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, unique
    /// within the VM. Typically the volume id (Nova uses it as the virtio serial too). It is
    /// what `detach_disk` and `resize_disk` take, and its first 20 bytes are the serial number
    /// the guest sees in `/sys/block/vdX/serial` (virtio-blk serials have 20 bytes).
    pub id: String,
    pub spec: DiskSpec,
}

impl Disk {
    pub fn new(id: impl Into<String>, spec: DiskSpec) -> Disk {
        Disk {
            id: id.into(),
            spec,
        }
    }
}

/// A MAC address (`52:54:00:12:34:56`); serialized as that string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<MacAddr> {
        let bad = || Error::invalid_spec(format!("{s:?} is not a MAC address"));
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(bytes))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MacAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a NIC is plugged into on the host side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NicBackend {
    /// An existing tap device (made and plugged into a bridge by the networking code; QEMU only
    /// opens it, with no up/down scripts). At most 15 characters.
    Tap { name: String },
    /// QEMU's user-mode network (slirp): no host setup at all. For tests and demos.
    User,
}

/// The virtual NIC model. Only virtio-net today; an enum so that e1000 can come later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NicModel {
    #[default]
    VirtioNet,
}

/// One NIC of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NicSpec {
    /// The caller's name for the NIC (typically the Neutron port id): same rules as [`Disk::id`].
    pub id: String,
    pub mac: MacAddr,
    pub backend: NicBackend,
    #[serde(default)]
    pub model: NicModel,
}

impl NicSpec {
    /// A virtio-net NIC on an existing tap device.
    pub fn tap(id: impl Into<String>, tap: impl Into<String>, mac: MacAddr) -> NicSpec {
        NicSpec {
            id: id.into(),
            mac,
            backend: NicBackend::Tap { name: tap.into() },
            model: NicModel::VirtioNet,
        }
    }

    /// A virtio-net NIC on QEMU's user-mode network.
    pub fn user(id: impl Into<String>, mac: MacAddr) -> NicSpec {
        NicSpec {
            id: id.into(),
            mac,
            backend: NicBackend::User,
            model: NicModel::VirtioNet,
        }
    }
}

/// The filesystem of a config drive image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigDriveFormat {
    /// A vfat image labelled `config-2`: attached as a read-only virtio disk.
    Vfat,
    /// An ISO 9660 image labelled `config-2`: attached as a read-only IDE CD-ROM.
    Iso9660,
}

/// An OpenStack config drive: an image file made by the caller, attached read-only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfigDrive {
    pub path: PathBuf,
    pub format: ConfigDriveFormat,
}

/// Which accelerator to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelMode {
    /// KVM when the host has a usable KVM, TCG otherwise.
    #[default]
    Auto,
    /// KVM or fail.
    Kvm,
    /// Software emulation, always.
    Tcg,
}

impl FromStr for AccelMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<AccelMode> {
        match s {
            "auto" => Ok(AccelMode::Auto),
            "kvm" => Ok(AccelMode::Kvm),
            "tcg" => Ok(AccelMode::Tcg),
            _ => Err(Error::invalid_spec(format!(
                "accel {s:?} is not one of auto, kvm, tcg"
            ))),
        }
    }
}

/// The accelerator actually in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the driver needs to create a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub id: VmId,
    /// A display name (QEMU's `-name`, process listings). Any text up to 255 characters.
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// The disk the VM boots from (`bootindex=0`).
    pub boot_disk: Disk,
    /// More disks, attached at start in this order. Hot-plugged disks are appended here.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// NICs, in PCI order. Empty is fine (a VM without network).
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    #[serde(default)]
    pub config_drive: Option<ConfigDrive>,
    /// Where the serial console goes. `None`: `console.log` in the VM's runtime dir, removed on
    /// destroy. A path given here belongs to the caller and is never removed.
    #[serde(default)]
    pub serial_log: Option<PathBuf>,
    #[serde(default)]
    pub accel: AccelMode,
}

/// Disk and NIC ids: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_device_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 {
        return Err(Error::invalid_spec(format!(
            "{what} id {id:?} must be 1 to 64 characters"
        )));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::invalid_spec(format!(
            "{what} id {id:?} may only hold A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

impl DiskSpec {
    pub(crate) fn validate(&self, what: &str) -> Result<()> {
        match &self.source {
            DiskSource::File(path) if !path.is_absolute() => Err(Error::invalid_spec(format!(
                "{what}: path {} is not absolute",
                path.display()
            ))),
            DiskSource::Rbd { pool, image, .. } if pool.is_empty() || image.is_empty() => Err(
                Error::invalid_spec(format!("{what}: an RBD disk needs a pool and an image")),
            ),
            _ => Ok(()),
        }
    }
}

impl Disk {
    /// Checks the id and the spec.
    pub fn validate(&self) -> Result<()> {
        validate_device_id("disk", &self.id)?;
        self.spec.validate(&format!("disk {}", self.id))
    }
}

impl NicSpec {
    /// Checks the id, the MAC (unicast) and the tap name.
    pub fn validate(&self) -> Result<()> {
        validate_device_id("NIC", &self.id)?;
        if self.mac.0[0] & 1 == 1 {
            return Err(Error::invalid_spec(format!(
                "NIC {}: MAC {} is a multicast address",
                self.id, self.mac
            )));
        }
        if let NicBackend::Tap { name } = &self.backend {
            let ok = !name.is_empty()
                && name.len() <= 15
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(Error::invalid_spec(format!(
                    "NIC {}: tap name {name:?} must be 1 to 15 characters of A-Z a-z 0-9 . _ -",
                    self.id
                )));
            }
        }
        Ok(())
    }
}

impl VmSpec {
    /// A spec with one vCPU, 128 MiB, the given boot disk and nothing else.
    pub fn new(id: VmId, name: impl Into<String>, boot_disk: Disk) -> VmSpec {
        VmSpec {
            id,
            name: name.into(),
            vcpus: 1,
            memory_mib: 128,
            boot_disk,
            disks: Vec::new(),
            nics: Vec::new(),
            config_drive: None,
            serial_log: None,
            accel: AccelMode::Auto,
        }
    }

    /// Checks everything that can be checked without touching the host: sizes, ids, MACs,
    /// absolute paths, unique disk and NIC ids.
    pub fn validate(&self) -> Result<()> {
        if self.name.chars().count() > 255 || self.name.chars().any(char::is_control) {
            return Err(Error::invalid_spec(
                "name must be at most 255 characters without control characters",
            ));
        }
        if !(1..=255).contains(&self.vcpus) {
            return Err(Error::invalid_spec(format!(
                "vcpus must be 1 to 255, not {}",
                self.vcpus
            )));
        }
        if !(16..=4 << 20).contains(&self.memory_mib) {
            return Err(Error::invalid_spec(format!(
                "memory_mib must be 16 to 4194304, not {}",
                self.memory_mib
            )));
        }
        let mut disk_ids = std::collections::HashSet::new();
        for disk in std::iter::once(&self.boot_disk).chain(&self.disks) {
            disk.validate()?;
            if !disk_ids.insert(disk.id.as_str()) {
                return Err(Error::invalid_spec(format!(
                    "disk id {} is used twice",
                    disk.id
                )));
            }
        }
        let mut nic_ids = std::collections::HashSet::new();
        let mut macs = std::collections::HashSet::new();
        for nic in &self.nics {
            nic.validate()?;
            if !nic_ids.insert(nic.id.as_str()) {
                return Err(Error::invalid_spec(format!(
                    "NIC id {} is used twice",
                    nic.id
                )));
            }
            if !macs.insert(nic.mac) {
                return Err(Error::invalid_spec(format!(
                    "MAC {} is used twice",
                    nic.mac
                )));
            }
        }
        if let Some(drive) = &self.config_drive {
            if !drive.path.is_absolute() {
                return Err(Error::invalid_spec(format!(
                    "config drive path {} is not absolute",
                    drive.path.display()
                )));
            }
        }
        if let Some(path) = &self.serial_log {
            if !path.is_absolute() {
                return Err(Error::invalid_spec(format!(
                    "serial log path {} is not absolute",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The disk with this id (boot disk included).
    pub fn disk(&self, id: &str) -> Option<&Disk> {
        std::iter::once(&self.boot_disk)
            .chain(&self.disks)
            .find(|disk| disk.id == id)
    }

    /// The NIC with this id.
    pub fn nic(&self, id: &str) -> Option<&NicSpec> {
        self.nics.iter().find(|nic| nic.id == id)
    }
}

/// What to do to a VM's power. See [`crate::Hypervisor::power`] for what each does from each
/// state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    /// Boot a VM that is shut down or crashed.
    Start,
    /// Clean shutdown: press the ACPI power button (again every few seconds), wait up to
    /// `timeout` for the guest to power off, then pull the plug.
    Stop { timeout: Duration },
    /// Pull the plug.
    HardStop,
    /// ACPI power button, then a reset once the guest has powered off (the QEMU process and its
    /// devices stay). Falls back to a hard reboot after `timeout`, or at once when the guest is
    /// not running.
    SoftReboot { timeout: Duration },
    /// Pull the plug and boot again from the spec (a fresh QEMU process): also recovers shut
    /// down and crashed VMs, like Nova's hard reboot.
    HardReboot,
    /// Freeze the vCPUs (QMP `stop`); memory stays in the QEMU process.
    Pause,
    /// Thaw a paused VM.
    Unpause,
    /// Like pause, but recorded as suspended (see [`PowerState::Suspended`]).
    Suspend,
    /// Thaw a suspended VM.
    Resume,
}

impl PowerAction {
    /// Clean shutdown with Nova's default timeout (60 s).
    pub const STOP: PowerAction = PowerAction::Stop {
        timeout: Duration::from_secs(60),
    };
    /// Soft reboot with Nova's default timeout (60 s).
    pub const SOFT_REBOOT: PowerAction = PowerAction::SoftReboot {
        timeout: Duration::from_secs(60),
    };

    /// A short name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop { .. } => "stop",
            PowerAction::HardStop => "hard stop",
            PowerAction::SoftReboot { .. } => "soft reboot",
            PowerAction::HardReboot => "hard reboot",
            PowerAction::Pause => "pause",
            PowerAction::Unpause => "unpause",
            PowerAction::Suspend => "suspend",
            PowerAction::Resume => "resume",
        }
    }
}

/// A VM's power state, as Nova's `power_state` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// The vCPUs run.
    Running,
    /// The vCPUs are frozen by `pause` (or by QEMU after a host I/O error: see `reason`).
    Paused,
    /// Powered off: no QEMU process. `start` boots it from its spec.
    Shutdown,
    /// The QEMU process died without being asked to, or the guest panicked. No QEMU process is
    /// left; `reason` says what happened. `start` or a hard reboot boots it again.
    Crashed,
    /// Suspended by `suspend`. The QEMU driver keeps the memory in the (stopped) QEMU process
    /// instead of saving it to disk, so a suspended VM still holds its RAM on this host.
    Suspended,
    /// Unknown or in transition (QEMU alive but its monitor does not answer, an incoming
    /// migration, ...).
    NoState,
}

impl PowerState {
    /// Nova's numeric `power_state` (`nova/compute/power_state.py`).
    pub fn nova_code(self) -> u8 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Paused => 3,
            PowerState::Shutdown => 4,
            PowerState::Crashed => 6,
            PowerState::Suspended => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::Running => "running",
            PowerState::Paused => "paused",
            PowerState::Shutdown => "shutdown",
            PowerState::Crashed => "crashed",
            PowerState::Suspended => "suspended",
            PowerState::NoState => "nostate",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the driver observes about one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStatus {
    pub id: VmId,
    pub name: String,
    pub power_state: PowerState,
    /// Why the VM is in this state when that is not obvious: how it crashed, why the monitor
    /// does not answer, "guest powered off", ...
    pub reason: Option<String>,
    /// The QEMU process, while there is one (always `None` on the fake).
    pub pid: Option<u32>,
    /// The accelerator the running process uses.
    pub accel: Option<Accel>,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Ids of the attached disks, boot disk first.
    pub disks: Vec<String>,
    /// Ids of the attached NICs.
    pub nics: Vec<String>,
}

impl VmStatus {
    pub(crate) fn from_spec(spec: &VmSpec, power_state: PowerState) -> VmStatus {
        VmStatus {
            id: spec.id,
            name: spec.name.clone(),
            power_state,
            reason: None,
            pid: None,
            accel: None,
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            disks: std::iter::once(&spec.boot_disk)
                .chain(&spec.disks)
                .map(|disk| disk.id.clone())
                .collect(),
            nics: spec.nics.iter().map(|nic| nic.id.clone()).collect(),
        }
    }
}

/// What a host offers (what the agent registers: Nova's hypervisor record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    /// `x86_64`.
    pub arch: String,
    /// Online logical CPUs.
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Size and free space of the filesystem holding the VMs' runtime dirs, GiB rounded down.
    pub disk_gib: u64,
    pub disk_free_gib: u64,
    /// `QEMU` (Nova's `hypervisor_type`) or `fake`.
    pub hypervisor_type: String,
    /// Nova's encoding: major * 1,000,000 + minor * 1,000 + micro (QEMU 7.2.22 = 7002022).
    pub hypervisor_version: u64,
    /// The accelerator VMs get when their spec says `auto`.
    pub accel: Accel,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec::new(
            VmId::new_random(),
            "vm1",
            Disk::new("root", DiskSpec::file("/d/root.qcow2", DiskFormat::Qcow2)),
        )
    }

    #[test]
    fn vm_id_round_trips() {
        let id = VmId::new_random();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<VmId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert!("nope".parse::<VmId>().is_err());
        let upper = "62ACAB81-CFCD-49E3-8EB2-CF3ECE928FA8"
            .parse::<VmId>()
            .unwrap();
        assert_eq!(upper.to_string(), "62acab81-cfcd-49e3-8eb2-cf3ece928fa8");
    }

    #[test]
    fn mac_parses_and_prints() {
        let mac: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"52:54:00:ab:cd:0f\""
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "5:54:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_round_trips_through_json() {
        let mut spec = spec();
        spec.nics.push(NicSpec::tap(
            "port-1",
            "tap1234",
            "52:54:00:00:00:01".parse().unwrap(),
        ));
        spec.config_drive = Some(ConfigDrive {
            path: "/d/cd.vfat".into(),
            format: ConfigDriveFormat::Vfat,
        });
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<VmSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn validation() {
        spec().validate().unwrap();
        type Mutation = Box<dyn Fn(&mut VmSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("vcpus", Box::new(|s| s.vcpus = 0)),
            ("memory", Box::new(|s| s.memory_mib = 8)),
            ("name", Box::new(|s| s.name = "a\nb".into())),
            (
                "relative",
                Box::new(|s| s.boot_disk.spec = DiskSpec::file("x.qcow2", DiskFormat::Raw)),
            ),
            ("disk id", Box::new(|s| s.boot_disk.id = "a b".into())),
            ("dup disk", Box::new(|s| s.disks.push(s.boot_disk.clone()))),
            (
                "multicast",
                Box::new(|s| s.nics.push(NicSpec::user("n", MacAddr([1, 0, 0, 0, 0, 1])))),
            ),
            (
                "tap",
                Box::new(|s| {
                    s.nics.push(NicSpec::tap(
                        "n",
                        "a-very-long-tap-name",
                        MacAddr([2, 0, 0, 0, 0, 1]),
                    ))
                }),
            ),
            (
                "dup mac",
                Box::new(|s| {
                    s.nics.push(NicSpec::user("a", MacAddr([2, 0, 0, 0, 0, 1])));
                    s.nics.push(NicSpec::user("b", MacAddr([2, 0, 0, 0, 0, 1])));
                }),
            ),
            (
                "serial",
                Box::new(|s| s.serial_log = Some("rel.log".into())),
            ),
        ];
        for (what, mutate) in cases {
            let mut spec = spec();
            mutate(&mut spec);
            let error = spec.validate().unwrap_err();
            assert!(
                matches!(error, Error::InvalidSpec { .. }),
                "{what}: {error}"
            );
        }
    }

    #[test]
    fn nova_power_codes() {
        assert_eq!(PowerState::Running.nova_code(), 1);
        assert_eq!(PowerState::Shutdown.nova_code(), 4);
        assert_eq!(PowerState::Crashed.nova_code(), 6);
    }
}
