//! The data plane's side of the internal agent API: what an agent's netplane needs from the
//! control plane on every pass, and what it reports back.
//!
//! ```text
//!   agent (netplane loop)                                   API
//!   GET  /internal/v1/hosts/{host}/network[?all=true]        -> HostNetworkState
//!        Networking's desired state (all of it for the network host, else the networks with a
//!        port bound to {host}), every host's underlay address, the metadata secret
//!   PUT  /internal/v1/hosts/{host}/dhcp-ports/{network}      -> 204 (network:dhcp port made)
//!   POST /internal/v1/hosts/{host}/port-status  PortStatusReport -> 204 (ACTIVE / DOWN)
//! ```
//!
//! The metadata secret travels here (behind the agent secret) so a remote agent's metadata proxy
//! signs `X-Instance-ID` exactly as [`super::metadata`] checks it, without a second secret to
//! copy around: whoever holds the agent secret already runs the tenants' VMs.

use std::collections::BTreeMap;

use nubo_common::{Error, Result};
use serde::{Deserialize, Serialize};

use super::ComputeService;
use crate::store;

/// `GET /internal/v1/hosts/{host}/network`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostNetworkState {
    /// Networking's desired state (`nubo_network::service::host::DesiredState` as JSON; the
    /// netplane reads it as `nubo_netplane::snapshot::Snapshot`).
    pub network: serde_json::Value,
    /// The underlay address every registered host gave (`HostRegistration::host_ip`).
    pub host_ips: BTreeMap<String, String>,
    /// The secret of `X-Instance-ID-Signature`.
    pub metadata_secret: String,
}

/// `POST /internal/v1/hosts/{host}/port-status`: ports whose status changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortStatusReport {
    #[serde(default)]
    pub active: Vec<String>,
    #[serde(default)]
    pub down: Vec<String>,
}

impl ComputeService {
    async fn require_host(&self, host: &str) -> Result<()> {
        let mut conn = self.read().await?;
        match store::hosts::get(&mut conn, host).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("Host {host} is not registered"))),
        }
    }

    /// What `host`'s netplane converges to: everything when `all` (the network host runs every
    /// router and DHCP server), else the networks with a port bound to `host`.
    pub async fn host_network_state(&self, host: &str, all: bool) -> Result<HostNetworkState> {
        self.require_host(host).await?;
        let desired = self
            .network
            .desired_state(if all { None } else { Some(host) })
            .await?;
        let hosts = {
            let mut conn = self.read().await?;
            store::hosts::list(&mut conn).await?
        };
        Ok(HostNetworkState {
            network: serde_json::to_value(&desired)
                .map_err(|e| Error::internal(format!("network state: {e}")))?,
            host_ips: hosts
                .into_iter()
                .filter(|h| !h.host_ip.is_empty())
                .map(|h| (h.name, h.host_ip))
                .collect(),
            metadata_secret: self.settings.metadata_secret.clone(),
        })
    }

    /// Gives `host`'s DHCP server for `network` its `network:dhcp` port (idempotent).
    pub async fn ensure_host_dhcp_port(&self, host: &str, network: &str) -> Result<()> {
        self.require_host(host).await?;
        self.network.ensure_dhcp_port(network, host).await?;
        Ok(())
    }

    /// Records what `host`'s data plane says about its ports. Unknown ports are ignored.
    pub async fn report_port_status(&self, host: &str, report: &PortStatusReport) -> Result<()> {
        self.require_host(host).await?;
        for (ports, up) in [(&report.active, true), (&report.down, false)] {
            for port in ports {
                self.network.set_port_status(port, up).await?;
            }
        }
        Ok(())
    }
}
