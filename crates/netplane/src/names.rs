//! Names of everything the netplane makes. Device names are at most 15 bytes (IFNAMSIZ - 1):
//! a 4-character prefix and the first 11 characters of the object's id, as Neutron does.
//!
//! | object | where | name |
//! |---|---|---|
//! | bridge per network | host | `nbr-<net11>` |
//! | VXLAN device per network | host | `nvx-<net11>` |
//! | VM tap | host | given by the caller (`tap<port11>`) |
//! | router namespace | | `<prefix>router-<router id>` |
//! | router internal port | router ns / host peer | `qr-<port11>` / `nri-<port11>` |
//! | router gateway port | router ns / host peer | `qg-<port11>` / `nrg-<port11>` |
//! | DHCP namespace | | `<prefix>dhcp-<network id>` |
//! | DHCP port | DHCP ns / host peer | `ns-<port11>` / `ndh-<port11>` |
//! | nft tables | host | `bridge nubo-sg`, `inet nubo-sg`, `inet nubo-ext` |
//! | nft table | router ns | `inet nubo-router` |
//!
//! `<prefix>` is [`crate::Config::namespace_prefix`] (`nubo-`): two netplanes on one machine
//! (two "hosts" in tests) use different prefixes.

pub const BRIDGE: &str = "nbr-";
pub const VXLAN: &str = "nvx-";
pub const ROUTER_INTERNAL_HOST: &str = "nri-";
pub const ROUTER_GATEWAY_HOST: &str = "nrg-";
pub const DHCP_HOST: &str = "ndh-";
pub const ROUTER_INTERNAL: &str = "qr-";
pub const ROUTER_GATEWAY: &str = "qg-";
pub const DHCP_PORT: &str = "ns-";
/// Host-side device prefixes the netplane owns (anything else is left alone, except the taps it
/// recorded in its state file).
pub const HOST_PREFIXES: [&str; 5] = [
    BRIDGE,
    VXLAN,
    ROUTER_INTERNAL_HOST,
    ROUTER_GATEWAY_HOST,
    DHCP_HOST,
];

pub const TABLE_SG: &str = "nubo-sg";
pub const TABLE_EXT: &str = "nubo-ext";
pub const TABLE_ROUTER: &str = "nubo-router";

fn short(id: &str) -> &str {
    match id.char_indices().nth(11) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

pub fn bridge(network: &str) -> String {
    format!("{BRIDGE}{}", short(network))
}

pub fn vxlan(network: &str) -> String {
    format!("{VXLAN}{}", short(network))
}

pub fn qr(port: &str) -> String {
    format!("{ROUTER_INTERNAL}{}", short(port))
}

pub fn qr_host(port: &str) -> String {
    format!("{ROUTER_INTERNAL_HOST}{}", short(port))
}

pub fn qg(port: &str) -> String {
    format!("{ROUTER_GATEWAY}{}", short(port))
}

pub fn qg_host(port: &str) -> String {
    format!("{ROUTER_GATEWAY_HOST}{}", short(port))
}

pub fn dhcp_port(port: &str) -> String {
    format!("{DHCP_PORT}{}", short(port))
}

pub fn dhcp_host(port: &str) -> String {
    format!("{DHCP_HOST}{}", short(port))
}

/// Namespace names, under one prefix.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub prefix: String,
}

impl Namespaces {
    pub fn router(&self, router: &str) -> String {
        format!("{}router-{router}", self.prefix)
    }

    pub fn dhcp(&self, network: &str) -> String {
        format!("{}dhcp-{network}", self.prefix)
    }

    /// What a namespace of ours is: `("router", id)` or `("dhcp", id)`.
    pub fn parse<'a>(&self, ns: &'a str) -> Option<(&'static str, &'a str)> {
        let rest = ns.strip_prefix(self.prefix.as_str())?;
        if let Some(id) = rest.strip_prefix("router-") {
            return Some(("router", id));
        }
        rest.strip_prefix("dhcp-").map(|id| ("dhcp", id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_ifnamsiz() {
        let id = "3f2a9c1e-77b0-4c1a-9d51-2f0e6a1b9c00";
        for n in [
            bridge(id),
            vxlan(id),
            qr(id),
            qr_host(id),
            qg(id),
            qg_host(id),
            dhcp_port(id),
            dhcp_host(id),
        ] {
            assert!(n.len() <= 15, "{n}");
        }
        assert_eq!(bridge(id), "nbr-3f2a9c1e-77");
        assert_eq!(qr(id), "qr-3f2a9c1e-77");
        assert_eq!(bridge("net1"), "nbr-net1");
    }

    #[test]
    fn namespaces_round_trip() {
        let ns = Namespaces {
            prefix: "nubo-".into(),
        };
        assert_eq!(ns.router("r1"), "nubo-router-r1");
        assert_eq!(ns.parse("nubo-router-r1"), Some(("router", "r1")));
        assert_eq!(ns.parse("nubo-dhcp-n1"), Some(("dhcp", "n1")));
        assert_eq!(ns.parse("other-router-r1"), None);
    }
}
