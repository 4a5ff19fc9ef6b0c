//! Networking (Neutron v2.0) for Nubo: the model and API of networks, subnets and IP address
//! management (IPv4 and IPv6, subnet pools, SLAAC), ports, security groups, routers, floating IPs
//! and port forwardings, RBAC, quotas and tags. No data plane: `service::host` hands the desired
//! state to whoever makes it real on hosts.
//!
//! `http` -> `service` -> `store`, one direction. `addr` holds address arithmetic, `input` the
//! request-body validation, `query` Neutron's filtering, sorting and pagination, `types` the wire
//! shapes, `extensions` the API extensions implemented.

pub mod addr;
pub mod extensions;
pub mod http;
pub mod input;
pub mod query;
pub mod service;
pub mod store;
pub mod types;

pub use service::defaults::DefaultNetworks;
pub use service::host::{DesiredState, PortState, ServerPortRequest};
pub use service::{NetworkService, NetworkSettings};
