//! What the agent does to the host besides the hypervisor: tap devices for NICs (until the data
//! plane's netplane owns them) and config drive images. [`RealHost`] does it with `ip` and
//! mtools (no mounts); [`FakeHost`] records it, for tests.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use nubo_compute::agent_api::ConfigDriveContent;
use parking_lot::Mutex;

#[async_trait::async_trait]
pub trait HostPlumbing: Send + Sync + 'static {
    /// Makes the tap device `name` (up, not yet in any bridge). Exists already: fine.
    async fn ensure_tap(&self, name: &str) -> Result<(), String>;
    /// Removes the tap device. Gone already: fine.
    async fn remove_tap(&self, name: &str) -> Result<(), String>;
    /// Writes a vfat image labelled `config-2` with `content` at `path`.
    async fn build_config_drive(
        &self,
        path: &Path,
        content: &ConfigDriveContent,
    ) -> Result<(), String>;
    /// Starts what the plumbing runs beside the agent until `stop` (the data plane's loop,
    /// [`crate::netplane::NetplaneHost`]); nothing by default.
    fn start(&self, _stop: tokio::sync::watch::Receiver<bool>) {}
}

/// The real host: `ip tuntap` (root needed) and `mkfs.vfat` + `mcopy`.
#[derive(Default)]
pub struct RealHost;

async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn tap_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[async_trait::async_trait]
impl HostPlumbing for RealHost {
    async fn ensure_tap(&self, name: &str) -> Result<(), String> {
        if !tap_exists(name) {
            if let Err(e) = run("ip", &["tuntap", "add", "dev", name, "mode", "tap"]).await {
                if !tap_exists(name) {
                    return Err(e);
                }
            }
        }
        run("ip", &["link", "set", "dev", name, "up"])
            .await
            .map(|_| ())
    }

    async fn remove_tap(&self, name: &str) -> Result<(), String> {
        if !tap_exists(name) {
            return Ok(());
        }
        match run("ip", &["link", "del", "dev", name]).await {
            Ok(_) => Ok(()),
            Err(_) if !tap_exists(name) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn build_config_drive(
        &self,
        path: &Path,
        content: &ConfigDriveContent,
    ) -> Result<(), String> {
        let dir = path.parent().ok_or("config drive path has no parent")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let staging = dir.join(format!(".{}.d", uuid::Uuid::new_v4()));
        let result = async {
            for (name, b64) in &content.files {
                if name.contains("..") || name.starts_with('/') {
                    return Err(format!("bad config drive path {name}"));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| e.to_string())?;
                let file = staging.join(name);
                std::fs::create_dir_all(file.parent().expect("has a parent"))
                    .map_err(|e| e.to_string())?;
                std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
            }
            let tmp = dir.join(format!(".{}.vfat", uuid::Uuid::new_v4()));
            let tmp_s = tmp.display().to_string();
            run("mkfs.vfat", &["-n", "config-2", "-C", &tmp_s, "8192"]).await?;
            let mut args = vec!["-s".to_string(), "-i".to_string(), tmp_s.clone()];
            for entry in std::fs::read_dir(&staging).map_err(|e| e.to_string())? {
                args.push(
                    entry
                        .map_err(|e| e.to_string())?
                        .path()
                        .display()
                        .to_string(),
                );
            }
            args.push("::/".into());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(e) = run("mcopy", &refs).await {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path).map_err(|e| e.to_string())
        }
        .await;
        let _ = std::fs::remove_dir_all(&staging);
        result
    }
}

/// Records taps and config drives; touches nothing.
#[derive(Default)]
pub struct FakeHost {
    pub taps: Mutex<BTreeSet<String>>,
    pub config_drives: Mutex<BTreeSet<String>>,
}

#[async_trait::async_trait]
impl HostPlumbing for FakeHost {
    async fn ensure_tap(&self, name: &str) -> Result<(), String> {
        self.taps.lock().insert(name.to_string());
        Ok(())
    }

    async fn remove_tap(&self, name: &str) -> Result<(), String> {
        self.taps.lock().remove(name);
        Ok(())
    }

    async fn build_config_drive(
        &self,
        path: &Path,
        _content: &ConfigDriveContent,
    ) -> Result<(), String> {
        self.config_drives.lock().insert(path.display().to_string());
        Ok(())
    }
}
