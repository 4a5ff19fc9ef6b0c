//! SQL for the Image service: image rows and memberships. Plain queries, rows mapped by hand;
//! no authorization and no validation here (that is `service`).

pub mod images;
pub mod members;
pub mod metadefs;

use nubo_common::Migration;

/// The Image service's schema, applied with `db.migrate("image", MIGRATIONS)`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "images and members",
        sql: include_str!("../../migrations/0001_image.sql"),
    },
    Migration {
        version: 2,
        name: "metadata definitions",
        sql: include_str!("../../migrations/0002_metadefs.sql"),
    },
    Migration {
        version: 3,
        name: "upload heartbeat",
        sql: include_str!("../../migrations/0003_upload_heartbeat.sql"),
    },
];
