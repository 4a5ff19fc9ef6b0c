//! Facts about the host: CPUs, memory, disk, hostname, whether KVM is usable.

use std::path::Path;

use crate::error::{Error, Result};
use crate::types::{Accel, AccelMode};

/// True when hardware KVM is usable: `/dev/kvm` exists and the Intel or AMD KVM module is
/// loaded. (A host whose KVM is `kvm_pvm`, as on the test machines, has `/dev/kvm` but cannot
/// run ordinary guests: it counts as no KVM.)
pub fn kvm_usable() -> bool {
    kvm_usable_at(Path::new("/"))
}

/// [`kvm_usable`] with another root (for tests).
pub fn kvm_usable_at(root: &Path) -> bool {
    let module = |name: &str| root.join("sys/module").join(name).exists();
    root.join("dev/kvm").exists() && (module("kvm_intel") || module("kvm_amd"))
}

/// Turns a requested accelerator mode into the one to use.
pub fn resolve_accel(mode: AccelMode, kvm_usable: bool) -> Result<Accel> {
    match mode {
        AccelMode::Tcg => Ok(Accel::Tcg),
        AccelMode::Kvm if kvm_usable => Ok(Accel::Kvm),
        AccelMode::Kvm => Err(Error::invalid_spec(
            "accel kvm was asked for, but this host has no usable KVM \
             (no /dev/kvm, or neither kvm_intel nor kvm_amd is loaded)",
        )),
        AccelMode::Auto if kvm_usable => Ok(Accel::Kvm),
        AccelMode::Auto => Ok(Accel::Tcg),
    }
}

/// Online logical CPUs.
pub fn cpu_count() -> u32 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as u32
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    }
}

/// `MemTotal` of `/proc/meminfo`, in MiB.
pub fn memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo_total_kib(&text))
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

fn parse_meminfo_total_kib(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Size and free space (for unprivileged users) of the filesystem holding `path`, in bytes.
pub fn disk_space(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid_spec(format!("path {} holds a NUL", path.display())))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is NUL-terminated and stat is a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::io("statvfs", path, std::io::Error::last_os_error()));
    }
    // SAFETY: statvfs succeeded, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between targets (u64 here, u32 elsewhere).
    #[allow(clippy::unnecessary_cast)]
    let (block, blocks, available) = (
        stat.f_frsize as u64,
        stat.f_blocks as u64,
        stat.f_bavail as u64,
    );
    Ok((blocks * block, available * block))
}

/// The kernel's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Parses `QEMU emulator version 7.2.22 (Debian ...)` into Nova's integer 7002022.
pub fn parse_qemu_version(text: &str) -> Option<u64> {
    let rest = text.split("version").nth(1)?;
    let version = rest.split_whitespace().next()?;
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some(major * 1_000_000 + minor * 1_000 + micro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_detection() {
        let root = tempfile::tempdir().unwrap();
        assert!(!kvm_usable_at(root.path()));
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/kvm"), "").unwrap();
        std::fs::create_dir_all(root.path().join("sys/module/kvm_pvm")).unwrap();
        assert!(!kvm_usable_at(root.path()), "kvm_pvm is not usable KVM");
        std::fs::create_dir_all(root.path().join("sys/module/kvm_amd")).unwrap();
        assert!(kvm_usable_at(root.path()));
    }

    #[test]
    fn accel_resolution() {
        assert_eq!(resolve_accel(AccelMode::Auto, false).unwrap(), Accel::Tcg);
        assert_eq!(resolve_accel(AccelMode::Auto, true).unwrap(), Accel::Kvm);
        assert_eq!(resolve_accel(AccelMode::Tcg, true).unwrap(), Accel::Tcg);
        assert!(resolve_accel(AccelMode::Kvm, false).is_err());
    }

    #[test]
    fn versions_and_meminfo() {
        assert_eq!(
            parse_qemu_version(
                "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)\nCopyright"
            ),
            Some(7_002_022)
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.1"),
            Some(10_001_000)
        );
        assert_eq!(parse_qemu_version("nonsense"), None);
        assert_eq!(
            parse_meminfo_total_kib("MemTotal:       24567892 kB\nMemFree: 1 kB\n"),
            Some(24_567_892)
        );
        assert!(memory_mib() > 0);
        assert!(cpu_count() >= 1);
        let (total, free) = disk_space(Path::new("/")).unwrap();
        assert!(total >= free && total > 0);
    }
}
