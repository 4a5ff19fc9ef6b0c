//! QEMU's command line for a VM spec, and the QMP arguments for hot-plugging the same devices.
//!
//! Disks are `-blockdev` JSON (the same object `blockdev-add` takes) plus a `-device`; NICs are a
//! `-netdev` plus a `-device`. Both forms come from one description per device, so a disk
//! attached at start and a disk hot-plugged later look the same to QEMU and to the guest.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::types::{
    Accel, ConfigDriveFormat, Disk, DiskSource, DiskSpec, NicBackend, NicModel, NicSpec, VmSpec,
};

/// The files QEMU is told about.
pub(crate) struct Paths<'a> {
    pub qmp: &'a Path,
    pub pidfile: &'a Path,
    pub console: &'a Path,
}

/// Options of the command line.
pub(crate) struct Options {
    /// `-sandbox on,...` (seccomp): no spawning, no privilege changes, no obsolete syscalls.
    pub sandbox: bool,
}

/// The block node name of a disk. Node names have at most 31 characters and disk ids up to 64,
/// so the name is a stable hash of the id: FNV-1a, which (unlike std's hasher) never changes
/// between Rust versions, so a restarted agent finds the nodes an older one made.
pub(crate) fn node_name(disk_id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in disk_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("d{hash:016x}")
}

/// The qdev id of a disk's device (QEMU ids must start with a letter).
pub(crate) fn disk_device_id(disk_id: &str) -> String {
    format!("disk-{disk_id}")
}

pub(crate) fn nic_device_id(nic_id: &str) -> String {
    format!("nic-{nic_id}")
}

pub(crate) fn netdev_id(nic_id: &str) -> String {
    format!("net-{nic_id}")
}

const CONFIG_DRIVE_NODE: &str = "configdrive";
const CONFIG_DRIVE_DEVICE: &str = "config-drive";

/// The `blockdev-add` / `-blockdev` object of a disk: a format node over a protocol node.
pub(crate) fn blockdev(node: &str, disk: &DiskSpec) -> Value {
    let file = match &disk.source {
        DiskSource::File(path) => json!({
            "driver": "file",
            "filename": path.to_string_lossy(),
        }),
        DiskSource::Rbd {
            pool,
            image,
            snapshot,
            user,
            conf,
        } => {
            let mut rbd = json!({ "driver": "rbd", "pool": pool, "image": image });
            if let Some(snapshot) = snapshot {
                rbd["snapshot"] = json!(snapshot);
            }
            if let Some(user) = user {
                rbd["user"] = json!(user);
            }
            if let Some(conf) = conf {
                rbd["conf"] = json!(conf.to_string_lossy());
            }
            rbd
        }
    };
    let mut file = file;
    file["read-only"] = json!(disk.read_only);
    json!({
        "node-name": node,
        "driver": disk.format.as_str(),
        "read-only": disk.read_only,
        "file": file,
    })
}

/// The `device_add` / `-device` properties of a disk.
pub(crate) fn disk_device(disk: &Disk, bootindex: Option<u32>) -> Map<String, Value> {
    // virtio-blk serials have 20 bytes; disk ids are ASCII, so this never splits a character.
    let serial: String = disk.id.chars().take(20).collect();
    let mut device = Map::new();
    device.insert("driver".into(), json!("virtio-blk-pci"));
    device.insert("id".into(), json!(disk_device_id(&disk.id)));
    device.insert("drive".into(), json!(node_name(&disk.id)));
    device.insert("serial".into(), json!(serial));
    if let Some(index) = bootindex {
        device.insert("bootindex".into(), json!(index));
    }
    device
}

/// The `netdev_add` / `-netdev` properties of a NIC's backend.
pub(crate) fn netdev(nic: &NicSpec) -> Map<String, Value> {
    let mut netdev = Map::new();
    match &nic.backend {
        NicBackend::Tap { name } => {
            netdev.insert("type".into(), json!("tap"));
            netdev.insert("id".into(), json!(netdev_id(&nic.id)));
            netdev.insert("ifname".into(), json!(name));
            netdev.insert("script".into(), json!("no"));
            netdev.insert("downscript".into(), json!("no"));
        }
        NicBackend::User => {
            netdev.insert("type".into(), json!("user"));
            netdev.insert("id".into(), json!(netdev_id(&nic.id)));
        }
    }
    netdev
}

/// The `device_add` / `-device` properties of a NIC.
pub(crate) fn nic_device(nic: &NicSpec) -> Map<String, Value> {
    let driver = match nic.model {
        NicModel::VirtioNet => "virtio-net-pci",
    };
    let mut device = Map::new();
    device.insert("driver".into(), json!(driver));
    device.insert("id".into(), json!(nic_device_id(&nic.id)));
    device.insert("netdev".into(), json!(netdev_id(&nic.id)));
    device.insert("mac".into(), json!(nic.mac.to_string()));
    // No option ROM: nothing boots from the network, and SeaBIOS gets faster.
    device.insert("romfile".into(), json!(""));
    device
}

/// Escapes a value for QEMU's `key=value,...` option syntax (a comma is written twice).
pub(crate) fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// Renders properties as `first,key=value,...`, where `first` is the value of `first_key`
/// (`driver` for devices, `type` for netdevs).
pub(crate) fn qemu_opts(properties: &Map<String, Value>, first_key: &str) -> String {
    let mut text = String::new();
    if let Some(first) = properties.get(first_key).and_then(Value::as_str) {
        text.push_str(&escape(first));
    }
    // Sorted, whatever serde_json's map order is (its `preserve_order` feature may be on).
    let mut keys: Vec<&String> = properties.keys().collect();
    keys.sort();
    for key in keys {
        let value = &properties[key];
        if key == first_key {
            continue;
        }
        let value = match value {
            Value::String(s) => escape(s),
            Value::Bool(true) => "on".into(),
            Value::Bool(false) => "off".into(),
            other => other.to_string(),
        };
        text.push(',');
        text.push_str(key);
        text.push('=');
        text.push_str(&value);
    }
    text
}

/// The whole command line (without the program).
pub(crate) fn command_line(
    spec: &VmSpec,
    accel: Accel,
    paths: &Paths<'_>,
    options: &Options,
) -> Vec<String> {
    let id = spec.id.to_string();
    let name = if spec.name.is_empty() {
        id.clone()
    } else {
        spec.name.clone()
    };
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&[
        "-name",
        &format!("guest={},debug-threads=on", escape(&name)),
    ]);
    push(&["-uuid", &id]);
    // What Nova puts there: cloud-init's ds-identify recognises OpenStack by this product name.
    push(&[
        "-smbios",
        &format!(
            "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,\
             version={},serial={id},uuid={id},family=Virtual Machine",
            env!("CARGO_PKG_VERSION")
        ),
    ]);
    push(&["-no-user-config", "-nodefaults", "-no-shutdown"]);
    // i440fx: PCI hot-plug works on the root bus out of the box (q35 needs one pre-made
    // pcie-root-port per hot-pluggable device), and the IDE controller for an ISO config drive
    // is built in.
    push(&["-machine", "pc"]);
    match accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        // qemu64: what Nova uses for TCG (cpu_mode=none); `max` measured no faster here.
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "qemu64"]),
    }
    push(&["-m", &spec.memory_mib.to_string()]);
    push(&["-smp", &spec.vcpus.to_string()]);
    push(&["-display", "none"]);
    push(&["-msg", "timestamp=on"]);
    if options.sandbox {
        push(&[
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        ]);
    }
    push(&["-pidfile", &paths.pidfile.to_string_lossy()]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            escape(&paths.qmp.to_string_lossy())
        ),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    push(&[
        "-chardev",
        &format!(
            "file,id=console,path={},append=on",
            escape(&paths.console.to_string_lossy())
        ),
        "-device",
        "isa-serial,chardev=console",
    ]);
    // Entropy for the guest's CRNG (the tiny guest's ssh host key waits for it), and a panic
    // device so a guest kernel panic is reported (GUEST_PANICKED) instead of a silent hang.
    push(&["-device", "virtio-rng-pci", "-device", "pvpanic"]);

    let disks =
        std::iter::once((&spec.boot_disk, Some(0))).chain(spec.disks.iter().map(|d| (d, None)));
    for (disk, bootindex) in disks {
        push(&[
            "-blockdev",
            &blockdev(&node_name(&disk.id), &disk.spec).to_string(),
        ]);
        push(&[
            "-device",
            &qemu_opts(&disk_device(disk, bootindex), "driver"),
        ]);
    }
    if let Some(drive) = &spec.config_drive {
        let image = DiskSpec {
            source: DiskSource::File(drive.path.clone()),
            format: crate::types::DiskFormat::Raw,
            read_only: true,
        };
        push(&[
            "-blockdev",
            &blockdev(CONFIG_DRIVE_NODE, &image).to_string(),
        ]);
        let device = match drive.format {
            ConfigDriveFormat::Vfat => format!(
                "virtio-blk-pci,id={CONFIG_DRIVE_DEVICE},drive={CONFIG_DRIVE_NODE},serial=config-2"
            ),
            ConfigDriveFormat::Iso9660 => format!(
                "ide-cd,bus=ide.1,unit=0,id={CONFIG_DRIVE_DEVICE},drive={CONFIG_DRIVE_NODE}"
            ),
        };
        push(&["-device", &device]);
    }
    for nic in &spec.nics {
        push(&["-netdev", &qemu_opts(&netdev(nic), "type")]);
        push(&["-device", &qemu_opts(&nic_device(nic), "driver")]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConfigDrive, DiskFormat, VmId};

    fn spec() -> VmSpec {
        let mut spec = VmSpec::new(
            "62acab81-cfcd-49e3-8eb2-cf3ece928fa8"
                .parse::<VmId>()
                .unwrap(),
            "web,1",
            Disk::new(
                "root",
                DiskSpec::file("/d/a,b/root.qcow2", DiskFormat::Qcow2),
            ),
        );
        spec.vcpus = 2;
        spec.memory_mib = 256;
        spec.disks.push(Disk::new(
            "0123456789abcdef0123456789abcdef",
            DiskSpec::file("/d/vol.raw", DiskFormat::Raw).read_only(),
        ));
        spec.nics.push(NicSpec::tap(
            "port1",
            "tap0",
            "52:54:00:00:00:01".parse().unwrap(),
        ));
        spec.config_drive = Some(ConfigDrive {
            path: "/d/cd.iso".into(),
            format: ConfigDriveFormat::Iso9660,
        });
        spec
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn command_line_for_a_full_spec() {
        let paths = Paths {
            qmp: Path::new("/run/vms/x/qmp.sock"),
            pidfile: Path::new("/run/vms/x/qemu.pid"),
            console: Path::new("/run/vms/x/console.log"),
        };
        let args = command_line(&spec(), Accel::Tcg, &paths, &Options { sandbox: true });
        assert_eq!(after(&args, "-name"), ["guest=web,,1,debug-threads=on"]);
        assert_eq!(
            after(&args, "-uuid"),
            ["62acab81-cfcd-49e3-8eb2-cf3ece928fa8"]
        );
        assert!(after(&args, "-smbios")[0].contains("uuid=62acab81-cfcd-49e3-8eb2-cf3ece928fa8"));
        assert!(after(&args, "-smbios")[0].contains("product=OpenStack Nova"));
        assert_eq!(after(&args, "-accel"), ["tcg"]);
        assert_eq!(after(&args, "-cpu"), ["qemu64"]);
        assert_eq!(after(&args, "-m"), ["256"]);
        assert_eq!(after(&args, "-smp"), ["2"]);
        for flag in ["-nodefaults", "-no-user-config", "-no-shutdown"] {
            assert!(args.iter().any(|a| a == flag), "{flag}");
        }
        let blockdevs: Vec<Value> = after(&args, "-blockdev")
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert_eq!(blockdevs.len(), 3);
        // JSON needs no comma escaping.
        assert_eq!(blockdevs[0]["file"]["filename"], "/d/a,b/root.qcow2");
        assert_eq!(blockdevs[0]["driver"], "qcow2");
        assert_eq!(blockdevs[0]["read-only"], false);
        assert_eq!(blockdevs[1]["driver"], "raw");
        assert_eq!(blockdevs[1]["read-only"], true);
        assert_eq!(blockdevs[1]["file"]["read-only"], true);
        assert_eq!(blockdevs[2]["node-name"], "configdrive");
        let devices = after(&args, "-device");
        let root = node_name("root");
        assert!(
            devices.contains(
                &format!("virtio-blk-pci,bootindex=0,drive={root},id=disk-root,serial=root")
                    .as_str()
            ),
            "{devices:?}"
        );
        let volume = devices.iter().find(|d| d.contains("id=disk-0123")).unwrap();
        assert!(
            volume.contains("serial=0123456789abcdef0123,")
                || volume.ends_with("serial=0123456789abcdef0123"),
            "{volume}"
        );
        assert!(!volume.contains("bootindex"));
        assert!(devices.contains(&"ide-cd,bus=ide.1,unit=0,id=config-drive,drive=configdrive"));
        assert_eq!(
            after(&args, "-netdev"),
            ["tap,downscript=no,id=net-port1,ifname=tap0,script=no"]
        );
        assert!(devices.contains(
            &"virtio-net-pci,id=nic-port1,mac=52:54:00:00:00:01,netdev=net-port1,romfile="
        ));
        assert!(after(&args, "-chardev")[0]
            .starts_with("socket,id=qmp,path=/run/vms/x/qmp.sock,server=on"));
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let paths = Paths {
            qmp: Path::new("/q"),
            pidfile: Path::new("/p"),
            console: Path::new("/c"),
        };
        let args = command_line(&spec(), Accel::Kvm, &paths, &Options { sandbox: false });
        assert_eq!(after(&args, "-accel"), ["kvm"]);
        assert_eq!(after(&args, "-cpu"), ["host"]);
        assert!(!args.iter().any(|a| a == "-sandbox"));
    }

    #[test]
    fn node_names_are_short_and_stable() {
        let name = node_name(&"x".repeat(64));
        assert!(name.len() <= 31);
        assert_eq!(node_name("root"), node_name("root"));
        assert_ne!(node_name("root"), node_name("roots"));
        // Pinned: a restarted agent must compute the same names as the one that made the nodes.
        assert_eq!(node_name(""), "dcbf29ce484222325");
    }

    #[test]
    fn rbd_blockdev() {
        let disk = DiskSpec {
            source: DiskSource::Rbd {
                pool: "vms".into(),
                image: "disk-1".into(),
                snapshot: None,
                user: Some("nubo".into()),
                conf: Some("/etc/ceph/ceph.conf".into()),
            },
            format: DiskFormat::Raw,
            read_only: false,
        };
        let value = blockdev("n", &disk);
        assert_eq!(value["file"]["driver"], "rbd");
        assert_eq!(value["file"]["pool"], "vms");
        assert_eq!(value["file"]["user"], "nubo");
        assert!(value["file"].get("snapshot").is_none());
    }
}
