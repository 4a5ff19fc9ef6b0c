-- Glance metadata definitions: one row per namespace; its properties, objects, tags and
-- resource type associations are kept in `doc` (a JSON object).
CREATE TABLE metadef_namespaces (
    namespace TEXT PRIMARY KEY,
    owner TEXT,
    visibility TEXT NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
