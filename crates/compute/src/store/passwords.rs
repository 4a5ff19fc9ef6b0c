//! Server passwords: what a guest POSTs to the metadata service's `password` file, one per
//! server (Nova's `password_0..3` system metadata), read and cleared by os-server-password.

use nubo_common::{Db, Result};

/// The stored password, `""` when none.
pub async fn get(db: &Db, server_id: &str) -> Result<String> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT password FROM compute_server_passwords WHERE server_id = ?")
            .bind(server_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(v.unwrap_or_default())
}

/// Sets the password unless one is set already; false when it was.
pub async fn set_once(db: &Db, server_id: &str, password: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO compute_server_passwords (server_id, password) VALUES (?, ?)
         ON CONFLICT (server_id) DO UPDATE SET password = excluded.password
         WHERE compute_server_passwords.password = ''",
    )
    .bind(server_id)
    .bind(password)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Clears the password (os-server-password DELETE): the guest may post a new one.
pub async fn clear(db: &Db, server_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_server_passwords WHERE server_id = ?")
        .bind(server_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
