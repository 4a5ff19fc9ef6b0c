-- Identity (Keystone v3) schema, version 1.
-- Domains are projects with is_domain = 1, as in Keystone; they have no domain_id (stored as
-- the sentinel '<<root>>' so that (domain_id, name) stays unique) and no parent.
-- JSON columns (extra, options) hold the free-form attributes Keystone echoes back.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    domain_id   TEXT NOT NULL,
    parent_id   TEXT,
    description TEXT NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1,
    is_domain   INTEGER NOT NULL DEFAULT 0,
    extra       TEXT NOT NULL DEFAULT '{}',
    options     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE INDEX projects_parent ON projects(parent_id);

CREATE TABLE project_tags (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    domain_id           TEXT NOT NULL REFERENCES projects(id),
    enabled             INTEGER NOT NULL DEFAULT 1,
    default_project_id  TEXT,
    password_hash       TEXT,
    password_created_at TEXT,
    password_expires_at TEXT,
    extra               TEXT NOT NULL DEFAULT '{}',
    options             TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    last_active_at      TEXT,
    UNIQUE (domain_id, name)
);

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    domain_id   TEXT NOT NULL REFERENCES projects(id),
    description TEXT NOT NULL DEFAULT '',
    extra       TEXT NOT NULL DEFAULT '{}',
    UNIQUE (domain_id, name)
);

CREATE TABLE user_groups (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups(group_id);

-- Global roles have domain_id '<<null>>'.
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    domain_id   TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    options     TEXT NOT NULL DEFAULT '{}',
    extra       TEXT NOT NULL DEFAULT '{}',
    UNIQUE (domain_id, name)
);

CREATE TABLE implied_roles (
    prior_role_id   TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    implied_role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (prior_role_id, implied_role_id)
);

-- kind: UserProject, GroupProject, UserDomain, GroupDomain, UserSystem, GroupSystem.
-- For system assignments target_id is 'system'.
CREATE TABLE assignments (
    kind      TEXT NOT NULL,
    actor_id  TEXT NOT NULL,
    target_id TEXT NOT NULL,
    role_id   TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    inherited INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, actor_id, target_id, role_id, inherited)
);
CREATE INDEX assignments_actor ON assignments(actor_id);
CREATE INDEX assignments_target ON assignments(target_id);

CREATE TABLE regions (
    id               TEXT PRIMARY KEY,
    description      TEXT NOT NULL DEFAULT '',
    parent_region_id TEXT,
    extra            TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE services (
    id      TEXT PRIMARY KEY,
    type    TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    extra   TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE endpoints (
    id         TEXT PRIMARY KEY,
    service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    interface  TEXT NOT NULL,
    region_id  TEXT,
    url        TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    extra      TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE application_credentials (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id   TEXT,
    secret_hash  TEXT NOT NULL,
    description  TEXT,
    expires_at   TEXT,
    unrestricted INTEGER NOT NULL DEFAULT 0,
    system       TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE application_credential_roles (
    application_credential_id TEXT NOT NULL REFERENCES application_credentials(id) ON DELETE CASCADE,
    role_id                   TEXT NOT NULL,
    PRIMARY KEY (application_credential_id, role_id)
);

CREATE TABLE access_rules (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    path        TEXT NOT NULL,
    method      TEXT NOT NULL,
    UNIQUE (user_id, service, path, method)
);

CREATE TABLE application_credential_access_rules (
    application_credential_id TEXT NOT NULL REFERENCES application_credentials(id) ON DELETE CASCADE,
    access_rule_id            TEXT NOT NULL REFERENCES access_rules(id),
    PRIMARY KEY (application_credential_id, access_rule_id)
);

CREATE TABLE credentials (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    project_id TEXT,
    type       TEXT NOT NULL,
    blob       TEXT NOT NULL,
    extra      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX credentials_user ON credentials(user_id);

CREATE TABLE policies (
    id    TEXT PRIMARY KEY,
    type  TEXT NOT NULL,
    blob  TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);

-- A token is revoked when every non-null field matches it and it was issued at or before
-- issued_before (microseconds since the epoch). Events older than the longest token lifetime
-- are pruned.
CREATE TABLE revocation_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        TEXT,
    project_id     TEXT,
    domain_id      TEXT,
    audit_id       TEXT,
    audit_chain_id TEXT,
    application_credential_id TEXT,
    issued_before  INTEGER NOT NULL,
    revoked_at     INTEGER NOT NULL
);
