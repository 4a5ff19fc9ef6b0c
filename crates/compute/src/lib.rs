//! Compute (Nova v2.1) for Nubo: flavors, keypairs, servers with Nova's state machine
//! (`vm_state` / `task_state` / `power_state`), the scheduler, quotas, instance actions, the
//! metadata service (OpenStack and EC2 trees, config drive content), and the internal API that
//! node agents pull their desired state from and report their observed state to.
//!
//! `http` -> `service` -> `store`, one direction. [`agent_api`] holds the wire types of the
//! internal agent API (shared with `nubo-agent`), [`microversion`] Nova's microversion
//! negotiation.
//!
//! ```text
//!   nova API ──> ComputeService ──> store (SQL)
//!                    │  claim (scheduler) -> ports (network) -> disk clone (blockstore)
//!                    │  -> desired state (host generation += 1) -> wait for the agent's report
//!                    v
//!   /internal/v1/hosts/{host}/desired  (long-poll)  <── nubo agent ──> hypervisor
//!   /internal/v1/hosts/{host}/observed              <──
//! ```

pub mod agent_api;
pub mod http;
pub mod microversion;
pub mod service;
pub mod store;

pub use service::{ComputeService, ComputeSettings};
