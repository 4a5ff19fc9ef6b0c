-- Server groups, host aggregates, and what outlives a deleted server (its instance actions are
-- kept; this row says whose it was, for os-instance-actions at 2.21+). Numbered 10 so the
-- migrations other work adds to compute (3, 4 ...) never collide with it.

CREATE TABLE compute_server_groups (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,             -- creation order (Nova lists by its integer id)
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    policy TEXT NOT NULL,                    -- affinity, anti-affinity, soft-affinity, soft-anti-affinity
    max_server_per_host INTEGER,             -- the one rule (2.64, anti-affinity only)
    created_at TEXT NOT NULL
);
CREATE INDEX compute_server_groups_project ON compute_server_groups(project_id);

CREATE TABLE compute_server_group_members (
    group_id TEXT NOT NULL REFERENCES compute_server_groups(id) ON DELETE CASCADE,
    server_id TEXT NOT NULL,
    PRIMARY KEY (group_id, server_id)
);
CREATE INDEX compute_server_group_members_server ON compute_server_group_members(server_id);

CREATE TABLE compute_aggregates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    availability_zone TEXT,                  -- mirrors metadata's availability_zone
    metadata TEXT NOT NULL DEFAULT '{}',     -- JSON object of strings
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE compute_aggregate_hosts (
    aggregate_id INTEGER NOT NULL REFERENCES compute_aggregates(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, host)
);
CREATE INDEX compute_aggregate_hosts_host ON compute_aggregate_hosts(host);

CREATE TABLE compute_deleted_servers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT NOT NULL
);
CREATE INDEX compute_deleted_servers_project ON compute_deleted_servers(project_id);

-- The same_host / different_host hints of a server, for every scheduling attempt.
CREATE TABLE compute_scheduler_hints (
    server_id TEXT PRIMARY KEY,
    hints TEXT NOT NULL                      -- JSON {group, same_host: [], different_host: []}
);
