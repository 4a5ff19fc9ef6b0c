//! Keypairs: imported public keys (fingerprint = MD5 of the key blob, as Nova computes it) and,
//! below 2.92, keys generated here when none is sent (the private half is returned once and
//! never stored).

use base64::Engine;
use md5::{Digest, Md5};
use nubo_common::{Caller, Error, Result};

use super::{now, require_admin, require_member, require_reader, ComputeService};
use crate::store;
use crate::store::keypairs::KeypairRow;

/// What `POST /os-keypairs` asks for, parsed.
#[derive(Debug, Clone, Default)]
pub struct NewKeypair {
    pub name: String,
    pub public_key: Option<String>,
    /// `ssh` or `x509` (2.2+).
    pub kind: String,
    /// Admins may create keypairs for other users (2.10+).
    pub user_id: Option<String>,
}

pub(crate) fn keypair_not_found(name: &str) -> Error {
    Error::not_found(format!("Keypair {name} not found for user."))
}

/// The MD5 fingerprint (`aa:bb:...`) of an OpenSSH public key line, or a 400.
pub fn fingerprint(public_key: &str) -> Result<String> {
    let invalid = || Error::bad_request("Keypair data is invalid: failed to generate fingerprint");
    let mut parts = public_key.split_whitespace();
    let kind = parts.next().ok_or_else(invalid)?;
    let blob = parts.next().ok_or_else(invalid)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| invalid())?;
    // The blob starts with the key type as an SSH string.
    if bytes.len() < 4 {
        return Err(invalid());
    }
    let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if bytes.len() < 4 + n || &bytes[4..4 + n] != kind.as_bytes() {
        return Err(invalid());
    }
    let digest = Md5::digest(&bytes);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The SHA-1 fingerprint of a PEM certificate (x509 keypairs), as `openssl x509 -fingerprint`
/// computes it.
async fn x509_fingerprint(pem: &str) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let invalid = || Error::bad_request("Keypair data is invalid: failed to generate fingerprint");
    let mut child = tokio::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::internal(format!("openssl: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(pem.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        return Err(invalid());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fp = text.trim().rsplit('=').next().ok_or_else(invalid)?;
    Ok(fp.to_ascii_lowercase())
}

/// Generates a self-signed certificate and its key with `openssl`: (private PEM, cert PEM).
async fn generate_x509(name: &str) -> Result<(String, String)> {
    let dir = tempfile_dir()?;
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let output = tokio::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
        ])
        .arg(format!("/CN={}", name.replace('/', "_")))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .await
        .map_err(|e| Error::internal(format!("openssl: {e}")))?;
    let result = if output.status.success() {
        Ok((
            std::fs::read_to_string(&key)?,
            std::fs::read_to_string(&cert)?,
        ))
    } else {
        Err(Error::internal(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )))
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Generates an RSA key pair with `ssh-keygen`: (private PEM, public OpenSSH line).
async fn generate(name: &str) -> Result<(String, String)> {
    let dir = tempfile_dir()?;
    let path = dir.join("key");
    let output = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C"])
        .arg(format!("Generated-by-Nova {name}"))
        .arg("-f")
        .arg(&path)
        .output()
        .await
        .map_err(|e| Error::internal(format!("ssh-keygen: {e}")))?;
    let result = if output.status.success() {
        let private = std::fs::read_to_string(&path)?;
        let public = std::fs::read_to_string(path.with_extension("pub"))?;
        Ok((private, public.trim().to_string()))
    } else {
        Err(Error::internal(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )))
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("nubo-keygen-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl ComputeService {
    fn keypair_owner(&self, caller: &Caller, user_id: Option<&str>) -> Result<String> {
        match user_id {
            Some(u) if u != caller.user_id => {
                require_admin(caller, "os_compute_api:os-keypairs:index")?;
                Ok(u.to_string())
            }
            _ => Ok(caller.user_id.clone()),
        }
    }

    pub async fn list_keypairs(
        &self,
        caller: &Caller,
        user_id: Option<&str>,
        limit: Option<usize>,
        marker: Option<&str>,
    ) -> Result<Vec<KeypairRow>> {
        require_reader(caller)?;
        let owner = self.keypair_owner(caller, user_id)?;
        let mut all = store::keypairs::list(&self.db, &owner).await?;
        if let Some(marker) = marker {
            let at = all
                .iter()
                .position(|k| k.name == marker)
                .ok_or_else(|| Error::bad_request(format!("marker [{marker}] not found")))?;
            all.drain(..=at);
        }
        if let Some(limit) = limit {
            all.truncate(limit);
        }
        Ok(all)
    }

    pub async fn get_keypair(
        &self,
        caller: &Caller,
        name: &str,
        user_id: Option<&str>,
    ) -> Result<KeypairRow> {
        require_reader(caller)?;
        let owner = self.keypair_owner(caller, user_id)?;
        store::keypairs::get(&self.db, &owner, name)
            .await?
            .ok_or_else(|| keypair_not_found(name))
    }

    /// Creates (imports or generates) a keypair; the second value is the generated private key.
    pub async fn create_keypair(
        &self,
        caller: &Caller,
        new: NewKeypair,
        name_rules_292: bool,
    ) -> Result<(KeypairRow, Option<String>)> {
        require_member(caller, "os_compute_api:os-keypairs:create")?;
        let owner = self.keypair_owner(caller, new.user_id.as_deref())?;
        let name = new.name.clone();
        let valid_name = if name_rules_292 {
            !name.is_empty()
                && name.len() <= 255
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " _.@-".contains(c))
        } else {
            !name.is_empty()
                && name.len() <= 255
                && name.trim() == name
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " _-".contains(c))
        };
        if !valid_name {
            return Err(Error::bad_request(
                "Keypair data is invalid: Keypair name contains unsafe characters",
            ));
        }
        let limit = self
            .quota_limit(&owner_project(caller), "key_pairs")
            .await?;
        if limit >= 0 && store::keypairs::count(&self.db, &owner).await? >= limit {
            return Err(Error::forbidden("Quota exceeded, too many key pairs."));
        }
        let (public_key, private_key) = match new.public_key.as_deref() {
            Some(k) => (k.trim().to_string(), None),
            None if new.kind == "x509" => {
                let (private, cert) = generate_x509(&name).await?;
                (cert, Some(private))
            }
            None => {
                let (private, public) = generate(&name).await?;
                (public, Some(private))
            }
        };
        let fp = if new.kind == "x509" {
            x509_fingerprint(&public_key).await?
        } else {
            fingerprint(&public_key)?
        };
        let row = KeypairRow {
            user_id: owner,
            name: name.clone(),
            id: 0,
            kind: new.kind.clone(),
            public_key,
            fingerprint: fp,
            created_at: now(),
        };
        store::keypairs::insert(&self.db, &row).await.map_err(|e| {
            if nubo_common::db::is_unique_violation(&e) {
                Error::conflict(format!("Key pair '{name}' already exists."))
            } else {
                e.into()
            }
        })?;
        let stored = store::keypairs::get(&self.db, &row.user_id, &name)
            .await?
            .ok_or_else(|| keypair_not_found(&name))?;
        Ok((stored, private_key))
    }

    pub async fn delete_keypair(
        &self,
        caller: &Caller,
        name: &str,
        user_id: Option<&str>,
    ) -> Result<()> {
        require_member(caller, "os_compute_api:os-keypairs:delete")?;
        let owner = self.keypair_owner(caller, user_id)?;
        if !store::keypairs::delete(&self.db, &owner, name).await? {
            return Err(keypair_not_found(name));
        }
        Ok(())
    }
}

fn owner_project(caller: &Caller) -> String {
    caller.project_id().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_nova() {
        // ssh-keygen -l -E md5 of this key prints this fingerprint.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHemCESQqlZf12czC6OL3cpN9wat57FiskuNuxHD6HAG k1";
        let fp = fingerprint(key).unwrap();
        assert_eq!(fp.len(), 47);
        assert!(fingerprint("ssh-rsa notbase64!").is_err());
        assert!(fingerprint(
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHemCESQqlZf12czC6OL3cpN9wat57FiskuNuxHD6HAG"
        )
        .is_err());
    }
}
