-- Identity schema, version 2: domain-specific configuration, endpoint filtering (OS-EP-FILTER)
-- and OAuth1 consumers (OS-OAUTH1).

CREATE TABLE domain_configs (
    domain_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    grp       TEXT NOT NULL,
    option    TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (domain_id, grp, option)
);

CREATE TABLE endpoint_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    filters     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE project_endpoint_groups (
    endpoint_group_id TEXT NOT NULL REFERENCES endpoint_groups(id) ON DELETE CASCADE,
    project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (endpoint_group_id, project_id)
);

CREATE TABLE project_endpoints (
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (endpoint_id, project_id)
);

CREATE TABLE oauth_consumers (
    id          TEXT PRIMARY KEY,
    description TEXT,
    secret_hash TEXT NOT NULL,
    extra       TEXT NOT NULL DEFAULT '{}'
);
