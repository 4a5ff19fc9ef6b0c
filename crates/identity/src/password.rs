//! Password and secret hashing: bcrypt (Keystone's default algorithm), run on the blocking pool
//! because one verification at cost 12 takes ~200 ms of CPU.

use nubo_common::{Error, Result};

/// Hashes `secret` at `cost` (4..=31).
pub async fn hash(secret: &str, cost: u32) -> Result<String> {
    let secret = secret.to_string();
    tokio::task::spawn_blocking(move || bcrypt::hash(secret, cost.clamp(4, 31)))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

/// True when `secret` matches `stored`; a malformed stored hash never matches.
pub async fn verify(secret: &str, stored: &str) -> bool {
    let secret = secret.to_string();
    let stored = stored.to_string();
    tokio::task::spawn_blocking(move || bcrypt::verify(secret, &stored).unwrap_or(false))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_only_the_right_secret() {
        let stored = hash("s3cret", 4).await.unwrap();
        assert!(stored.starts_with("$2"));
        assert!(verify("s3cret", &stored).await);
        assert!(!verify("wrong", &stored).await);
        assert!(!verify("s3cret", "not a hash").await);
    }
}
