//! The state file (`<state_dir>/state.json`): what the netplane needs to find its own objects
//! again after a restart that the kernel does not tell it.
//!
//! * `marks`: port id -> 16-bit index used in packet marks (stable while the port lives here);
//! * `zones`: network id -> conntrack zone;
//! * `nft`: per nft object, the hash rendered and the fingerprint observed (see [`crate::nft`]);
//! * `processes`: dnsmasq/radvd PIDs with their start time and command line, to adopt them;
//! * `taps`: taps of ports that were desired here (removed when the port goes).
//!
//! Losing the file is safe: marks and zones are allocated again (their chains are rewritten
//! once), processes that cannot be adopted are replaced, taps of our bridges are still found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::nft::Record;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat: tells a recycled PID apart.
    pub start_time: u64,
    pub argv: Vec<String>,
    /// The namespace's inode when it was started.
    pub netns_inode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub marks: BTreeMap<String, u16>,
    #[serde(default)]
    pub zones: BTreeMap<String, u16>,
    #[serde(default)]
    pub nft: BTreeMap<String, Record>,
    #[serde(default)]
    pub processes: BTreeMap<String, ProcRecord>,
    #[serde(default)]
    pub taps: BTreeSet<String>,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Loads the file; a missing or unreadable file is an empty state (logged).
    pub fn load(dir: &Path) -> State {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable netplane state file: starting afresh");
                State::default()
            }),
            Err(_) => State::default(),
        }
    }

    /// Writes atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}

/// Gives every key in `wanted` a number in 1..=65535, keeping existing ones and dropping the
/// rest. Returns `None` for keys that did not fit (more than 65535).
pub fn allocate(map: &mut BTreeMap<String, u16>, wanted: &BTreeSet<String>) {
    map.retain(|k, _| wanted.contains(k));
    let mut used: BTreeSet<u16> = map.values().copied().collect();
    let mut next: u16 = 1;
    for k in wanted {
        if map.contains_key(k) {
            continue;
        }
        while used.contains(&next) && next < u16::MAX {
            next += 1;
        }
        if used.contains(&next) {
            tracing::error!(key = %k, "no index left (65535 in use)");
            continue;
        }
        used.insert(next);
        map.insert(k.clone(), next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_stable_and_reuses_freed_numbers() {
        let mut m = BTreeMap::new();
        let w: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        allocate(&mut m, &w);
        assert_eq!(m["a"], 1);
        assert_eq!(m["c"], 3);
        let w: BTreeSet<String> = ["a", "c", "d"].iter().map(|s| s.to_string()).collect();
        allocate(&mut m, &w);
        assert_eq!((m["a"], m["c"], m["d"]), (1, 3, 2));
        assert!(!m.contains_key("b"));
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::default();
        s.marks.insert("p".into(), 4);
        s.taps.insert("tapx".into());
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()), s);
        std::fs::write(State::path(dir.path()), b"garbage").unwrap();
        assert_eq!(State::load(dir.path()), State::default());
    }
}
