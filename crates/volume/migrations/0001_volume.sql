-- Block Storage (Cinder) schema. Every table is prefixed `volume_` (one database holds every
-- service). Metadata and specs are JSON objects of strings in TEXT columns.

CREATE TABLE volume_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_public INTEGER NOT NULL DEFAULT 1,
    extra_specs TEXT NOT NULL DEFAULT '{}',
    qos_specs_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE volume_type_access (
    type_id TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (type_id, project_id)
);

-- A project's own default type (3.62).
CREATE TABLE volume_default_types (
    project_id TEXT PRIMARY KEY,
    type_id TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE
);

CREATE TABLE volume_qos_specs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    consumer TEXT NOT NULL DEFAULT 'back-end',
    specs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE volume_volumes (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    size INTEGER NOT NULL,                 -- GiB
    status TEXT NOT NULL,
    previous_status TEXT,
    attach_status TEXT NOT NULL DEFAULT 'detached',
    migration_status TEXT,
    availability_zone TEXT NOT NULL,
    type_id TEXT,
    snapshot_id TEXT,
    source_volid TEXT,
    image_id TEXT,                         -- the image it was made from (imageRef)
    group_id TEXT,
    bootable INTEGER NOT NULL DEFAULT 0,
    readonly INTEGER NOT NULL DEFAULT 0,
    multiattach INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    image_metadata TEXT NOT NULL DEFAULT '{}',  -- volume_image_metadata
    store_name TEXT,                       -- the block store object holding the data, once made
    old_store_names TEXT NOT NULL DEFAULT '[]', -- objects replaced (revert, reimage) kept for their snapshots
    use_quota INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    launched_at TEXT
);
CREATE INDEX volume_volumes_project ON volume_volumes(project_id);
CREATE INDEX volume_volumes_created ON volume_volumes(created_at, id);

CREATE TABLE volume_snapshots (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    size INTEGER NOT NULL,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '0%',
    metadata TEXT NOT NULL DEFAULT '{}',
    store_name TEXT,
    store_kind TEXT NOT NULL DEFAULT 'snapshot',  -- `snapshot`, or `image` for a copy of an in-use volume
    group_snapshot_id TEXT,
    use_quota INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX volume_snapshots_volume ON volume_snapshots(volume_id);
CREATE INDEX volume_snapshots_project ON volume_snapshots(project_id);

-- Cinder's attachments, and for the ones Compute made, Nova's block device mapping fields.
CREATE TABLE volume_attachments (
    id TEXT PRIMARY KEY,
    volume_id TEXT NOT NULL,
    instance_uuid TEXT,
    attached_host TEXT,
    mountpoint TEXT,
    attach_status TEXT NOT NULL,           -- reserved | attaching | attached | detaching
    attach_mode TEXT NOT NULL DEFAULT 'rw',
    connector TEXT,
    by_compute INTEGER NOT NULL DEFAULT 0, -- made by Compute: hot-plugged into the server by its agent
    tag TEXT,
    delete_on_termination INTEGER NOT NULL DEFAULT 0,
    boot_index INTEGER,
    attach_time TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX volume_attachments_volume ON volume_attachments(volume_id);
CREATE INDEX volume_attachments_instance ON volume_attachments(instance_uuid);

CREATE TABLE volume_quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (project_id, resource)
);

CREATE TABLE volume_quota_classes (
    class_name TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (class_name, resource)
);

-- The services the volume API reports (admins may disable them).
CREATE TABLE volume_services (
    binary TEXT NOT NULL,
    host TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    frozen INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (binary, host)
);

CREATE TABLE volume_group_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_public INTEGER NOT NULL DEFAULT 1,
    group_specs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE volume_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    status TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    group_type_id TEXT NOT NULL,
    volume_types TEXT NOT NULL DEFAULT '[]',
    group_snapshot_id TEXT,
    source_group_id TEXT,
    replication_status TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE volume_group_snapshots (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    group_type_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE volume_transfers (
    id TEXT PRIMARY KEY,
    volume_id TEXT NOT NULL,
    name TEXT,
    salt TEXT NOT NULL,
    crypt_hash TEXT NOT NULL,
    source_project_id TEXT NOT NULL,
    destination_project_id TEXT,
    accepted INTEGER NOT NULL DEFAULT 0,
    no_snapshots INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

-- User messages (3.3): why an asynchronous operation failed.
CREATE TABLE volume_messages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource_type TEXT,
    resource_uuid TEXT,
    event_id TEXT NOT NULL,
    message_level TEXT NOT NULL,
    user_message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Encryption specs of volume types (recorded; volumes of such types are refused: no key manager).
CREATE TABLE volume_type_encryption (
    type_id TEXT PRIMARY KEY REFERENCES volume_types(id) ON DELETE CASCADE,
    encryption_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    cipher TEXT,
    key_size INTEGER,
    control_location TEXT NOT NULL DEFAULT 'front-end',
    created_at TEXT NOT NULL,
    updated_at TEXT
);
