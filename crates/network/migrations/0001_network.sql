-- Networking (Neutron v2.0) schema, version 1.
-- Every resource with standard attributes has description, created_at, updated_at and
-- revision_number. List-valued attributes that only ever travel with their owner
-- (allocation pools, DNS servers, host routes, address pairs, DHCP options, extra routes) are
-- JSON text; anything that is searched, joined or must be unique has its own table or column.
-- IPAM's guarantees live here: an address is allocated once per network (ip_allocations
-- primary key), a MAC once per network, a VXLAN id once, a flat physical network once.

CREATE TABLE networks (
    id                      TEXT PRIMARY KEY,
    project_id              TEXT NOT NULL,
    name                    TEXT NOT NULL DEFAULT '',
    description             TEXT NOT NULL DEFAULT '',
    admin_state_up          INTEGER NOT NULL DEFAULT 1,
    status                  TEXT NOT NULL DEFAULT 'ACTIVE',
    external                INTEGER NOT NULL DEFAULT 0,
    is_default              INTEGER NOT NULL DEFAULT 0,
    network_type            TEXT NOT NULL,
    physical_network        TEXT,
    segmentation_id         INTEGER,
    mtu                     INTEGER NOT NULL,
    port_security_enabled   INTEGER NOT NULL DEFAULT 1,
    availability_zone_hints TEXT NOT NULL DEFAULT '[]',
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    revision_number         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX networks_project ON networks(project_id);
CREATE UNIQUE INDEX networks_segment ON networks(network_type, segmentation_id)
    WHERE segmentation_id IS NOT NULL;
CREATE UNIQUE INDEX networks_flat ON networks(physical_network) WHERE network_type = 'flat';

CREATE TABLE subnetpools (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    name              TEXT NOT NULL DEFAULT '',
    description       TEXT NOT NULL DEFAULT '',
    ip_version        INTEGER NOT NULL,
    prefixes          TEXT NOT NULL DEFAULT '[]',
    min_prefixlen     INTEGER NOT NULL,
    max_prefixlen     INTEGER NOT NULL,
    default_prefixlen INTEGER NOT NULL,
    shared            INTEGER NOT NULL DEFAULT 0,
    is_default        INTEGER NOT NULL DEFAULT 0,
    default_quota     INTEGER,
    address_scope_id  TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    revision_number   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE subnets (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    network_id        TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    name              TEXT NOT NULL DEFAULT '',
    description       TEXT NOT NULL DEFAULT '',
    ip_version        INTEGER NOT NULL,
    cidr              TEXT NOT NULL,
    gateway_ip        TEXT,
    enable_dhcp       INTEGER NOT NULL DEFAULT 1,
    ipv6_ra_mode      TEXT,
    ipv6_address_mode TEXT,
    subnetpool_id     TEXT REFERENCES subnetpools(id),
    allocation_pools  TEXT NOT NULL DEFAULT '[]',
    dns_nameservers   TEXT NOT NULL DEFAULT '[]',
    host_routes       TEXT NOT NULL DEFAULT '[]',
    service_types     TEXT NOT NULL DEFAULT '[]',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    revision_number   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX subnets_network ON subnets(network_id);
CREATE INDEX subnets_pool ON subnets(subnetpool_id);

CREATE TABLE ports (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL,
    network_id            TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL DEFAULT '',
    description           TEXT NOT NULL DEFAULT '',
    admin_state_up        INTEGER NOT NULL DEFAULT 1,
    status                TEXT NOT NULL DEFAULT 'DOWN',
    mac_address           TEXT NOT NULL,
    device_id             TEXT NOT NULL DEFAULT '',
    device_owner          TEXT NOT NULL DEFAULT '',
    port_security_enabled INTEGER NOT NULL DEFAULT 1,
    host_id               TEXT NOT NULL DEFAULT '',
    vnic_type             TEXT NOT NULL DEFAULT 'normal',
    vif_type              TEXT NOT NULL DEFAULT 'unbound',
    vif_details           TEXT NOT NULL DEFAULT '{}',
    binding_profile       TEXT NOT NULL DEFAULT '{}',
    allowed_address_pairs TEXT NOT NULL DEFAULT '[]',
    extra_dhcp_opts       TEXT NOT NULL DEFAULT '[]',
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    revision_number       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_device ON ports(device_id);
CREATE INDEX ports_project ON ports(project_id);
CREATE INDEX ports_host ON ports(host_id);

CREATE TABLE ip_allocations (
    network_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    subnet_id  TEXT NOT NULL REFERENCES subnets(id) ON DELETE CASCADE,
    port_id    TEXT NOT NULL REFERENCES ports(id) ON DELETE CASCADE,
    -- the address as 32 hex digits: sorts like the number
    ip_key     TEXT NOT NULL,
    PRIMARY KEY (network_id, ip_address)
);
CREATE INDEX ip_allocations_subnet ON ip_allocations(subnet_id, ip_key);
CREATE INDEX ip_allocations_port ON ip_allocations(port_id);

CREATE TABLE security_groups (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL DEFAULT '',
    stateful        INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    revision_number INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX security_groups_project ON security_groups(project_id);

-- The one `default` group of each project.
CREATE TABLE default_security_groups (
    project_id        TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE
);

CREATE TABLE security_group_rules (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    security_group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
    direction         TEXT NOT NULL,
    ethertype         TEXT NOT NULL,
    protocol          TEXT,
    port_range_min    INTEGER,
    port_range_max    INTEGER,
    remote_ip_prefix  TEXT,
    remote_group_id   TEXT REFERENCES security_groups(id) ON DELETE CASCADE,
    description       TEXT NOT NULL DEFAULT '',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    revision_number   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX security_group_rules_group ON security_group_rules(security_group_id);
CREATE INDEX security_group_rules_remote ON security_group_rules(remote_group_id);

CREATE TABLE port_security_groups (
    port_id           TEXT NOT NULL REFERENCES ports(id) ON DELETE CASCADE,
    security_group_id TEXT NOT NULL REFERENCES security_groups(id),
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX port_security_groups_group ON port_security_groups(security_group_id);

CREATE TABLE routers (
    id                      TEXT PRIMARY KEY,
    project_id              TEXT NOT NULL,
    name                    TEXT NOT NULL DEFAULT '',
    description             TEXT NOT NULL DEFAULT '',
    admin_state_up          INTEGER NOT NULL DEFAULT 1,
    status                  TEXT NOT NULL DEFAULT 'ACTIVE',
    gw_port_id              TEXT REFERENCES ports(id),
    gw_network_id           TEXT,
    enable_snat             INTEGER NOT NULL DEFAULT 1,
    routes                  TEXT NOT NULL DEFAULT '[]',
    availability_zone_hints TEXT NOT NULL DEFAULT '[]',
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    revision_number         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX routers_project ON routers(project_id);

CREATE TABLE floatingips (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL,
    floating_network_id TEXT NOT NULL,
    floating_port_id    TEXT NOT NULL,
    floating_ip_address TEXT NOT NULL,
    fixed_port_id       TEXT REFERENCES ports(id),
    fixed_ip_address    TEXT,
    router_id           TEXT REFERENCES routers(id),
    status              TEXT NOT NULL DEFAULT 'DOWN',
    description         TEXT NOT NULL DEFAULT '',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    revision_number     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (fixed_port_id, fixed_ip_address)
);
CREATE INDEX floatingips_project ON floatingips(project_id);
CREATE INDEX floatingips_router ON floatingips(router_id);

CREATE TABLE port_forwardings (
    id                  TEXT PRIMARY KEY,
    floatingip_id       TEXT NOT NULL REFERENCES floatingips(id) ON DELETE CASCADE,
    internal_port_id    TEXT NOT NULL REFERENCES ports(id) ON DELETE CASCADE,
    internal_ip_address TEXT NOT NULL,
    internal_port_start INTEGER NOT NULL,
    internal_port_end   INTEGER NOT NULL,
    external_port_start INTEGER NOT NULL,
    external_port_end   INTEGER NOT NULL,
    protocol            TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    UNIQUE (floatingip_id, protocol, external_port_start)
);

CREATE TABLE rbac_policies (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL,
    object_type    TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    action         TEXT NOT NULL,
    target_project TEXT NOT NULL,
    UNIQUE (object_type, object_id, action, target_project)
);
CREATE INDEX rbac_policies_object ON rbac_policies(object_id);

CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    resource   TEXT NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (project_id, resource)
);

CREATE TABLE tags (
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    tag           TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, tag)
);
CREATE INDEX tags_resource ON tags(resource_id);
