//! The scheduler: which host a server goes to.
//!
//! Filters (Nova's `ComputeFilter`, `AvailabilityZoneFilter` and the resource filters that
//! Placement applies): the host is up (heartbeat within `service_down_time`, not forced down)
//! and enabled, in the requested availability zone, not one a previous attempt failed on, and
//! has the flavor's vCPUs, RAM and disk free after allocation ratios; and the server group's
//! policy and `same_host`/`different_host` hints ([`super::server_groups`]). Weigher: a soft
//! group policy first, then the most free RAM (spread, Nova's default), or the least (pack).
//!
//! Claims are atomic: usage is the sum over the servers placed on a host, and [`ComputeService::
//! claim_for`] runs inside the write transaction that records the placement, so two concurrent
//! creates never both see the last free slot.

use chrono::Utc;
use nubo_common::Result;

use super::server_groups::Placement;
use super::{ComputeService, Tx};
use crate::store;
use crate::store::hosts::HostRow;
use crate::store::servers::FlavorSnapshot;

/// A host as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct HostState {
    pub host: HostRow,
    pub up: bool,
    pub used_vcpus: i64,
    pub used_ram: i64,
    pub used_disk: i64,
    pub servers: i64,
}

impl HostState {
    pub fn free_ram(&self, ratio: f64) -> f64 {
        self.host.memory_mb as f64 * ratio - self.used_ram as f64
    }
}

impl ComputeService {
    /// Is a host with this heartbeat up now?
    pub(crate) fn is_up(&self, host: &HostRow) -> bool {
        if host.forced_down {
            return false;
        }
        match nubo_common::time::parse(&host.last_heartbeat) {
            Some(t) => {
                let age = Utc::now().signed_duration_since(t);
                age.num_milliseconds() < self.settings.service_down_time.as_millis() as i64
            }
            None => false,
        }
    }

    /// Every host with its usage.
    pub(crate) async fn host_states(
        &self,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<Vec<HostState>> {
        let hosts = store::hosts::list(conn).await?;
        let usage = store::servers::usage_by_host(conn).await?;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let u = usage.iter().find(|u| u.0 == h.name);
                HostState {
                    up: self.is_up(&h),
                    used_vcpus: u.map(|u| u.1).unwrap_or(0),
                    used_ram: u.map(|u| u.2).unwrap_or(0),
                    used_disk: u.map(|u| u.3).unwrap_or(0),
                    servers: u.map(|u| u.4).unwrap_or(0),
                    host: h,
                }
            })
            .collect())
    }

    /// Picks a host for `server` inside `tx` (the caller records the placement in the same
    /// transaction); `None`: no valid host. The server group's policy and the scheduler hints
    /// apply too (`ServerGroupAffinityFilter`, `ServerGroupAntiAffinityFilter`, `SameHostFilter`,
    /// `DifferentHostFilter`, and the soft policies' weighers).
    pub(crate) async fn claim_for(
        &self,
        tx: &mut Tx,
        server: &crate::store::servers::ServerRow,
        excluded: &[String],
    ) -> Result<Option<HostRow>> {
        let placement = self.placement_of(tx, &server.id).await?;
        self.claim_with(
            tx,
            &server.flavor,
            server.requested_az.as_deref(),
            excluded,
            &placement,
        )
        .await
    }

    async fn claim_with(
        &self,
        tx: &mut Tx,
        flavor: &FlavorSnapshot,
        az: Option<&str>,
        excluded: &[String],
        placement: &Placement,
    ) -> Result<Option<HostRow>> {
        let s = &self.settings;
        let candidates: Vec<HostState> = self
            .host_states(tx)
            .await?
            .into_iter()
            .filter(|h| h.up && h.host.enabled)
            .filter(|h| az.is_none_or(|az| h.host.availability_zone == az))
            .filter(|h| !excluded.contains(&h.host.name))
            .filter(|h| placement.allows(&h.host.name))
            .filter(|h| {
                h.used_vcpus + flavor.vcpus
                    <= (h.host.vcpus as f64 * s.cpu_allocation_ratio).floor() as i64
            })
            .filter(|h| flavor.memory_mb as f64 <= h.free_ram(s.ram_allocation_ratio))
            .filter(|h| {
                (h.used_disk + flavor.root_gb + flavor.ephemeral_gb) as f64
                    <= h.host.disk_gb as f64 * s.disk_allocation_ratio
            })
            .collect();
        let ratio = s.ram_allocation_ratio;
        let best = if s.pack {
            candidates.into_iter().min_by(|a, b| {
                placement
                    .weight(&b.host.name)
                    .cmp(&placement.weight(&a.host.name))
                    .then_with(|| a.free_ram(ratio).total_cmp(&b.free_ram(ratio)))
                    .then_with(|| a.host.name.cmp(&b.host.name))
            })
        } else {
            candidates.into_iter().max_by(|a, b| {
                placement
                    .weight(&a.host.name)
                    .cmp(&placement.weight(&b.host.name))
                    .then_with(|| a.free_ram(ratio).total_cmp(&b.free_ram(ratio)))
                    .then_with(|| b.host.name.cmp(&a.host.name))
            })
        };
        Ok(best.map(|h| h.host))
    }
}
