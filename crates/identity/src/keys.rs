//! The Fernet key repository, laid out as Keystone lays it out: a directory of files named by
//! integers, each holding one base64 key. `0` is the *staged* key (will become primary at the next
//! rotation, so other nodes can already decrypt with it), the highest number is the *primary*
//! (encrypts new tokens), everything between is a *secondary* (still decrypts older tokens).
//!
//! Rotation (`nubo admin rotate-keys`): the staged key becomes the new primary, a new staged key
//! is written, and the oldest secondaries are removed until `max_active_keys` remain. A running
//! API notices the change (it re-reads the directory when its modification time moves) and keeps
//! validating tokens sealed with any key still present.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::token::FernetKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key repository {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {0} does not hold a Fernet key")]
    BadKey(PathBuf),
    #[error("key repository {0} holds no keys")]
    Empty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The keys on disk, by index.
fn read_repository(dir: &Path) -> Result<Vec<(u32, FernetKey)>, KeyError> {
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let Some(index) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let key = FernetKey::from_base64(&text).ok_or_else(|| KeyError::BadKey(path.clone()))?;
        keys.push((index, key));
    }
    keys.sort_by_key(|(index, _)| *index);
    Ok(keys)
}

fn write_key(dir: &Path, index: u32, key: &FernetKey) -> Result<(), KeyError> {
    let tmp = dir.join(format!(".{index}.tmp"));
    let final_path = dir.join(index.to_string());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(key.to_base64().as_bytes())
        .map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &final_path).map_err(io(&final_path))
}

/// Creates the repository with a staged and a primary key when it has none.
pub fn setup_repository(dir: &Path) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    if read_repository(dir)?.is_empty() {
        write_key(dir, 0, &FernetKey::generate())?;
        write_key(dir, 1, &FernetKey::generate())?;
    }
    Ok(())
}

/// Promotes the staged key to primary, stages a new key and prunes to `max_active_keys` (at
/// least 3: staged, primary, one secondary). Returns the new primary's index.
pub fn rotate_repository(dir: &Path, max_active_keys: usize) -> Result<u32, KeyError> {
    setup_repository(dir)?;
    let keys = read_repository(dir)?;
    let highest = keys.iter().map(|(i, _)| *i).max().unwrap_or(0);
    let new_primary = highest + 1;
    let staged = dir.join("0");
    fs::rename(&staged, dir.join(new_primary.to_string())).map_err(io(&staged))?;
    write_key(dir, 0, &FernetKey::generate())?;
    let max = max_active_keys.max(3);
    let mut indexes: Vec<u32> = read_repository(dir)?.into_iter().map(|(i, _)| i).collect();
    while indexes.len() > max {
        // indexes is sorted; [0] is the staged key, [1] the oldest secondary.
        let oldest = indexes.remove(1);
        let path = dir.join(oldest.to_string());
        fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(new_primary)
}

/// The keys a running node seals and opens tokens with.
pub struct KeyRing {
    dir: Option<PathBuf>,
    /// Primary first, then the others from newest to oldest, staged last.
    keys: RwLock<Arc<Vec<FernetKey>>>,
    seen: Mutex<(Option<SystemTime>, Instant)>,
}

impl KeyRing {
    /// Loads the repository at `dir`, creating it if needed.
    pub fn open(dir: &Path) -> Result<KeyRing, KeyError> {
        setup_repository(dir)?;
        let ring = KeyRing {
            dir: Some(dir.to_path_buf()),
            keys: RwLock::new(Arc::new(Vec::new())),
            seen: Mutex::new((None, Instant::now())),
        };
        ring.reload()?;
        Ok(ring)
    }

    /// A ring of one key held only in memory (tests).
    pub fn ephemeral() -> KeyRing {
        KeyRing {
            dir: None,
            keys: RwLock::new(Arc::new(vec![FernetKey::generate()])),
            seen: Mutex::new((None, Instant::now())),
        }
    }

    fn reload(&self) -> Result<(), KeyError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mtime = fs::metadata(dir).and_then(|m| m.modified()).ok();
        let mut on_disk = read_repository(dir)?;
        if on_disk.is_empty() {
            return Err(KeyError::Empty(dir.clone()));
        }
        // Descending: primary (highest) first, secondaries, staged (0) last.
        on_disk.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
        *self.keys.write() = Arc::new(on_disk.into_iter().map(|(_, k)| k).collect());
        *self.seen.lock() = (mtime, Instant::now());
        Ok(())
    }

    /// Re-reads the directory if it changed; checks at most once a second.
    pub fn refresh_if_changed(&self) {
        let Some(dir) = &self.dir else { return };
        {
            let seen = self.seen.lock();
            if seen.1.elapsed() < Duration::from_secs(1) {
                return;
            }
        }
        let mtime = fs::metadata(dir).and_then(|m| m.modified()).ok();
        let changed = self.seen.lock().0 != mtime;
        if changed {
            if let Err(err) = self.reload() {
                tracing::error!(error = %err, "cannot reload Fernet keys; keeping the old ones");
            }
        } else {
            self.seen.lock().1 = Instant::now();
        }
    }

    pub fn encrypt(&self, plaintext: &[u8], timestamp: u64) -> String {
        self.refresh_if_changed();
        let keys = self.keys.read().clone();
        keys[0].encrypt(plaintext, timestamp)
    }

    /// Opens `raw` with whichever active key sealed it.
    pub fn decrypt(&self, raw: &[u8]) -> Option<Vec<u8>> {
        self.refresh_if_changed();
        let keys = self.keys.read().clone();
        keys.iter().find_map(|key| key.decrypt(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::decode_token;

    #[test]
    fn rotation_keeps_old_tokens_valid_until_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path()).unwrap();
        let first = ring.encrypt(b"first", 1);

        rotate_repository(dir.path(), 3).unwrap();
        ring.reload().unwrap();
        assert_eq!(
            ring.decrypt(&decode_token(&first).unwrap()).unwrap(),
            b"first"
        );
        let second = ring.encrypt(b"second", 2);

        // Two more rotations push the key that sealed `first` out of a 3-key repository.
        rotate_repository(dir.path(), 3).unwrap();
        rotate_repository(dir.path(), 3).unwrap();
        ring.reload().unwrap();
        assert!(ring.decrypt(&decode_token(&first).unwrap()).is_none());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
        // `second` was sealed by the key promoted at the first rotation: pruned too by now? It
        // was primary at rotation 1, secondary after 2, pruned after 3 with max 3.
        assert!(ring.decrypt(&decode_token(&second).unwrap()).is_none());
    }

    #[test]
    fn staged_key_becomes_primary() {
        let dir = tempfile::tempdir().unwrap();
        setup_repository(dir.path()).unwrap();
        let staged = fs::read_to_string(dir.path().join("0")).unwrap();
        let primary = rotate_repository(dir.path(), 3).unwrap();
        assert_eq!(primary, 2);
        assert_eq!(fs::read_to_string(dir.path().join("2")).unwrap(), staged);
        let ring = KeyRing::open(dir.path()).unwrap();
        let token = ring.encrypt(b"x", 1);
        let staged_key = FernetKey::from_base64(&staged).unwrap();
        assert_eq!(
            staged_key.decrypt(&decode_token(&token).unwrap()).unwrap(),
            b"x"
        );
    }
}
