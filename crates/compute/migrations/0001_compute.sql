-- Compute (Nova) schema. Every table is prefixed `compute_` (one database holds every service).

CREATE TABLE compute_flavors (
    id TEXT PRIMARY KEY,              -- Nova's flavorid (a string: "1", a UUID, a name ...)
    name TEXT NOT NULL UNIQUE,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    root_gb INTEGER NOT NULL,
    ephemeral_gb INTEGER NOT NULL DEFAULT 0,
    swap INTEGER NOT NULL DEFAULT 0,
    rxtx_factor REAL NOT NULL DEFAULT 1.0,
    is_public INTEGER NOT NULL DEFAULT 1,
    disabled INTEGER NOT NULL DEFAULT 0,
    description TEXT,
    extra_specs TEXT NOT NULL DEFAULT '{}',   -- JSON object of strings
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE compute_flavor_access (
    flavor_id TEXT NOT NULL REFERENCES compute_flavors(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);

CREATE TABLE compute_keypairs (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    id INTEGER NOT NULL,
    type TEXT NOT NULL DEFAULT 'ssh',
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- One row per hypervisor host (Nova's service + compute node in one).
CREATE TABLE compute_hosts (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,          -- UUID (os-hypervisors and os-services ids at 2.53+)
    seq INTEGER NOT NULL UNIQUE,      -- small integer id (os-hypervisors before 2.53)
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    disk_gb INTEGER NOT NULL,
    hypervisor_type TEXT NOT NULL,
    hypervisor_version INTEGER NOT NULL,
    host_ip TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    forced_down INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 1,   -- bumped whenever the host's desired state changes
    last_heartbeat TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE compute_servers (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,      -- instance-%08x
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    launch_index INTEGER NOT NULL DEFAULT 0,
    hostname TEXT NOT NULL,
    description TEXT,
    vm_state TEXT NOT NULL,
    task_state TEXT,
    power_state INTEGER NOT NULL DEFAULT 0,
    host TEXT,
    availability_zone TEXT,           -- where it landed
    requested_az TEXT,                -- what the user asked for (pinned_availability_zone)
    flavor TEXT NOT NULL,             -- JSON snapshot of the flavor (id, name, sizes, extra_specs)
    image_ref TEXT NOT NULL DEFAULT '',
    disk_name TEXT,                   -- the root disk's block store object
    old_disk TEXT,                    -- the disk a rebuild replaced, deleted once the VM moved off it
    key_name TEXT,
    key_data TEXT,
    user_data TEXT,
    config_drive INTEGER NOT NULL DEFAULT 0,
    access_ipv4 TEXT NOT NULL DEFAULT '',
    access_ipv6 TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    security_groups TEXT NOT NULL DEFAULT '[]',
    networks TEXT NOT NULL DEFAULT '"auto"', -- the requested networks, JSON
    ports TEXT NOT NULL DEFAULT '[]',        -- [{port_id, created, mac, tap}] once allocated
    locked INTEGER NOT NULL DEFAULT 0,
    locked_by TEXT,
    locked_reason TEXT,
    fault TEXT,                              -- JSON {code, message, details, created}
    desired_power TEXT NOT NULL DEFAULT 'running',
    hard_stop INTEGER NOT NULL DEFAULT 0,
    reboot_seq INTEGER NOT NULL DEFAULT 0,
    reboot_hard INTEGER NOT NULL DEFAULT 0,
    respawn_seq INTEGER NOT NULL DEFAULT 0,
    applied_reboot_seq INTEGER NOT NULL DEFAULT 0,
    applied_respawn_seq INTEGER NOT NULL DEFAULT 0,
    deleting INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    observed_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    launched_at TEXT
);
CREATE INDEX compute_servers_project ON compute_servers(project_id);
CREATE INDEX compute_servers_host ON compute_servers(host);
CREATE INDEX compute_servers_created ON compute_servers(created_at, id);

CREATE TABLE compute_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    message TEXT,
    start_time TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX compute_actions_server ON compute_actions(server_id);

CREATE TABLE compute_action_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id INTEGER NOT NULL REFERENCES compute_actions(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT,
    result TEXT,
    traceback TEXT,
    host TEXT
);

CREATE TABLE compute_quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- Console output requests answered by agents.
CREATE TABLE compute_host_requests (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    server_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    length INTEGER,
    result TEXT,
    error TEXT,
    created_at TEXT NOT NULL
);
