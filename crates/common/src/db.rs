//! The control-plane database: a SQLite pool in WAL mode, and a small migration runner.
//!
//! Each service crate embeds its schema as a list of [`Migration`]s (SQL files pulled in with
//! `include_str!`) and applies them on start with [`Db::migrate`]; applied versions are recorded
//! per service in `schema_migrations`, so services migrate independently. Services never see
//! the pool's type: their `store.rs` takes `&Db` and writes plain SQL, which keeps the door open
//! to PostgreSQL for several API nodes.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::error::Error;

/// One schema change of one service.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH` or `sqlite::memory:`).
    pub async fn open(url: &str, max_connections: u32) -> Result<Db, Error> {
        let in_memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::internal(format!("bad database url {url}: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .synchronous(SqliteSynchronous::Normal)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            });
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection: keep exactly one.
            .max_connections(if in_memory { 1 } else { max_connections.max(1) })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(options)
            .await
            .map_err(|e| Error::internal(format!("cannot open database {url}: {e}")))?;
        Ok(Db { pool })
    }

    /// A fresh private in-memory database (tests).
    pub async fn in_memory() -> Db {
        Db::open("sqlite::memory:", 1)
            .await
            .expect("in-memory sqlite opens")
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies `service`'s migrations that are not yet recorded, each in its own transaction.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> Result<(), Error> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                service TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL,
                PRIMARY KEY (service, version))",
        )
        .execute(&self.pool)
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE service = ?")
                .bind(service)
                .fetch_all(&self.pool)
                .await?;
        for migration in migrations {
            if applied.contains(&migration.version) {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    Error::internal(format!(
                        "migration {service} {} ({}) failed: {e}",
                        migration.version, migration.name
                    ))
                })?;
            sqlx::query(
                "INSERT INTO schema_migrations (service, version, name, applied_at) VALUES (?, ?, ?, ?)",
            )
            .bind(service)
            .bind(migration.version)
            .bind(migration.name)
            .bind(crate::time::now_rfc3339())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(
                service,
                version = migration.version,
                name = migration.name,
                "migrated"
            );
        }
        Ok(())
    }
}

/// True when `err` is a UNIQUE constraint violation (a duplicate name, say).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// True when `err` is a FOREIGN KEY constraint violation.
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_foreign_key_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            name: "things",
            sql: "CREATE TABLE things (id TEXT PRIMARY KEY);",
        },
        Migration {
            version: 2,
            name: "names",
            sql:
                "ALTER TABLE things ADD COLUMN name TEXT; CREATE INDEX things_name ON things(name);",
        },
    ];

    #[tokio::test]
    async fn migrations_apply_once() {
        let db = Db::in_memory().await;
        db.migrate("test", MIGRATIONS).await.unwrap();
        db.migrate("test", MIGRATIONS).await.unwrap();
        sqlx::query("INSERT INTO things (id, name) VALUES ('a', 'b')")
            .execute(db.pool())
            .await
            .unwrap();
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM schema_migrations WHERE service = 'test'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_nothing_behind() {
        let db = Db::in_memory().await;
        let bad = [Migration {
            version: 1,
            name: "bad",
            sql: "CREATE TABLE t (a); SELECT nonsense FROM nowhere;",
        }];
        assert!(db.migrate("bad", &bad).await.is_err());
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(tables, 0);
    }
}
