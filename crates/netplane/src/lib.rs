//! Nubo's host networking: converges one host to a desired [`HostNetwork`] — per network a
//! bridge + VXLAN device with controller-pushed FDB entries, VM taps, nftables security groups
//! with anti-spoofing, router namespaces (SNAT, floating IPs, extra routes, RA), dnsmasq DHCP,
//! and a metadata proxy — and reports what it changed.
//!
//! ```text
//!  agent reconcile loop
//!     |  HostNetwork (serde: travels over the internal API)
//!     v
//!  Netplane::apply  ---- LinuxNetplane (root: ip/bridge/nft/sysctl, dnsmasq, radvd, proxy)
//!                   \--- FakeNetplane  (records what was applied; same validation and
//!                                       rendering; fault knobs)
//! ```
//!
//! Contract of [`Netplane::apply`]:
//! * converges the host to exactly `desired`: creates what is missing, fixes what differs,
//!   removes what it made that is no longer desired (recognised by name prefix, nft table name
//!   and its state file — never anything else, never a flush of everything);
//! * idempotent: applying the same state again changes nothing and reports no change;
//! * heals: a bridge, rule, namespace, FDB entry or dnsmasq deleted by hand comes back;
//! * best effort per object: one broken object is in [`Report::errors`], the rest converges;
//! * fails at once, changing nothing, without root ([`Error::NotRoot`]) or with an invalid
//!   desired state ([`Error::Invalid`]).
//!
//! Applies are serialised inside one netplane. The real one runs its blocking work on tokio's
//! blocking pool and its metadata listeners on the caller's runtime.

pub mod dhcp;
pub mod error;
pub mod fake;
pub mod linux;
pub mod metadata;
pub mod model;
pub mod names;
pub mod nft;
pub mod procs;
pub mod router;
pub mod runner;
pub mod sg;
pub mod snapshot;
pub mod state;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use fake::FakeNetplane;
pub use linux::{is_root, Config, LinuxNetplane};
pub use model::*;

/// What one apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// One line per change (`create bridge nbr-...`); empty when the host was already there.
    pub changes: Vec<String>,
    /// Objects that could not be converged (the rest were).
    pub errors: Vec<String>,
    /// Ports whose tap is plugged into a working bridge with its filter in place: what the
    /// agent reports `ACTIVE` (the others `DOWN`).
    pub ports_ready: Vec<String>,
    pub duration_ms: u64,
    /// Commands run (reads and writes).
    pub commands: usize,
}

impl Report {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What exists of ours on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Our router and DHCP namespaces.
    pub namespaces: Vec<String>,
    /// Our host devices (bridges, VXLAN devices, veth peers, taps).
    pub links: Vec<ObservedLink>,
    /// VXLAN FDB entries: `dev mac dst`.
    pub fdb: Vec<String>,
    /// Our nft tables: `family name` on the host, `ns: family name` in namespaces.
    pub nft_tables: Vec<String>,
    pub processes: Vec<ObservedProcess>,
    /// Metadata proxy listeners (`router:<id>`, `dhcp:<network>`).
    pub metadata_listeners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedLink {
    pub name: String,
    pub kind: String,
    pub master: Option<String>,
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedProcess {
    /// `dnsmasq:<network>` or `radvd:<router>`.
    pub key: String,
    pub pid: u32,
    pub alive: bool,
}

impl Observed {
    /// Nothing of ours is left.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.links.is_empty()
            && self.fdb.is_empty()
            && self.nft_tables.is_empty()
            && self.processes.iter().all(|p| !p.alive)
            && self.metadata_listeners.is_empty()
    }
}

/// The host data plane. Share it as `Arc<dyn Netplane>`.
#[async_trait]
pub trait Netplane: Send + Sync + 'static {
    /// Converges the host to `desired` (see the crate docs for the contract).
    async fn apply(&self, desired: &HostNetwork) -> Result<Report>;

    /// What of ours exists now.
    async fn observe(&self) -> Result<Observed>;
}
