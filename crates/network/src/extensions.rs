//! The Neutron API extensions Nubo implements, exactly: `GET /v2.0/extensions` lists these, and
//! `api_extensions.txt` (read by the Tempest harness) must name the same aliases (a test checks).

pub struct Extension {
    pub alias: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub updated: &'static str,
}

const fn ext(alias: &'static str, name: &'static str, description: &'static str) -> Extension {
    Extension {
        alias,
        name,
        description,
        updated: "2025-01-01T00:00:00-00:00",
    }
}

pub const EXTENSIONS: &[Extension] = &[
    ext("allowed-address-pairs", "Allowed Address Pairs", "Ports may send from further IP/MAC pairs."),
    ext("availability_zone", "Availability Zone", "Lists the availability zones networks and routers live in."),
    ext("binding", "Port Binding", "The host a port is bound to and how it is plugged (admin only)."),
    ext("default-subnetpools", "Default Subnetpools", "One default subnet pool per IP version, used by use_default_subnetpool."),
    ext("expose-port-forwarding-in-fip", "Expose port forwardings in a floating IP", "Floating IPs show their port forwardings."),
    ext("ext-gw-mode", "Configurable external gateway mode", "Routers may disable SNAT on their external gateway."),
    ext("external-net", "Neutron external network", "Networks may be external: router gateways and floating IPs live there."),
    ext("extra_dhcp_opt", "Neutron Extra DHCP options", "Ports may carry extra DHCP options."),
    ext("extraroute", "Neutron Extra Route", "Routers may carry extra static routes."),
    ext("extraroute-atomic", "Atomically add/remove extra routes", "Add or remove some of a router's extra routes in one call."),
    ext("filter-validation", "Filter parameters validation", "Filtering on an attribute a resource does not have is a 400."),
    ext("fip-pf-description", "Floating IP Port Forwarding Description", "Port forwardings have a description."),
    ext("fip-pf-port-range", "Floating IP Port Forwarding support port ranges", "Port forwardings may map port ranges."),
    ext("fip-port-details", "Floating IP Port Details Extension", "Floating IPs show details of the port they are associated with."),
    ext("floating-ip-port-forwarding", "Floating IP Port Forwarding", "Forward ports of a floating IP to internal addresses and ports."),
    ext("ip-substring-filtering", "IP address substring filtering", "Filter ports by part of an IP address (fixed_ips=ip_address_substr=...)."),
    ext("l2_adjacency", "L2 Adjacency", "Whether a network's ports share one broadcast domain."),
    ext("net-mtu", "Network MTU", "Networks expose their MTU."),
    ext("net-mtu-writable", "Network MTU (writable)", "The MTU of a network may be set."),
    ext("network_availability_zone", "Network Availability Zone", "Networks have availability zone hints."),
    ext("pagination", "Pagination support", "limit, marker and page_reverse on every collection."),
    ext("port-security", "Port Security", "Port security (anti-spoofing and security groups) may be disabled per network or port."),
    ext("port-security-groups-filtering", "Port filtering on security groups", "Filter ports by security group."),
    ext("project-id", "project_id field enabled", "Resources carry project_id as well as tenant_id."),
    ext("provider", "Provider Network", "Network segment type, physical network and segmentation id (admin only)."),
    ext("quota_details", "Quota details extension", "Quota usage: limit, used and reserved per resource."),
    ext("quota-check-limit", "Quota engine limit check", "Quota updates below current usage are refused (unless forced)."),
    ext("quota-check-limit-default", "Quota engine limit check by default", "The usage check applies without being asked for."),
    ext("quotas", "Quota management support", "Per-project quotas on networking resources."),
    ext("rbac-policies", "RBAC Policies", "Share networks with other projects, or make them external to them."),
    ext("router", "Neutron L3 Router", "Routers, router interfaces and floating IPs."),
    ext("router_availability_zone", "Router Availability Zone", "Routers have availability zone hints."),
    ext("security-group", "security-group", "Security groups and their rules."),
    ext("service-type", "Neutron Service Type Management", "Lists service providers (none)."),
    ext("sorting", "Sorting support", "sort_key and sort_dir on every collection."),
    ext("standard-attr-description", "standard-attr-description", "Resources have a description."),
    ext("standard-attr-revisions", "Resource revision numbers", "Resources have a revision_number bumped on every change."),
    ext("standard-attr-tag", "Tag support for resources with standard attribute", "Tags on networks, subnets, ports, routers, subnet pools, security groups and floating IPs."),
    ext("standard-attr-timestamp", "Resource timestamps", "Resources have created_at and updated_at."),
    ext("stateful-security-group", "Stateful security group", "Security groups may be stateless."),
    ext("subnet-external-network", "Subnet External Network", "Subnets show whether their network is external."),
    ext("subnet_allocation", "Subnet Allocation", "Subnets may be allocated from subnet pools."),
    ext("subnetpool-prefix-ops", "Subnet Pool Prefix Operations", "Add or remove prefixes of a subnet pool."),
    ext("tag", "Tag support", "Tags on networks."),
    ext("tag-creation", "Tag creation extension", "Tags may be given when a resource is created."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_extensions_file_matches() {
        let text = include_str!("../api_extensions.txt");
        let mut listed: Vec<&str> = text.trim().split(',').map(str::trim).collect();
        listed.sort_unstable();
        let mut ours: Vec<&str> = EXTENSIONS.iter().map(|e| e.alias).collect();
        ours.sort_unstable();
        assert_eq!(listed, ours);
    }
}
