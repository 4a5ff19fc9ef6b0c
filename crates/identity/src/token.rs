//! Tokens: stateless, authenticated-encrypted, in Keystone's Fernet format.
//!
//! A token is the Fernet envelope of a small binary payload, base64url without padding (as
//! Keystone strips it):
//!
//! ```text
//! 0x80 | timestamp (u64 BE) | IV (16) | AES-128-CBC(PKCS7, payload) | HMAC-SHA256 (32)
//! ```
//!
//! Each 32-byte key is a signing key (first half) and an encryption key (second half); the
//! [`crate::keys::KeyRing`] decides which keys exist. The payload carries exactly what is needed
//! to rebuild the token without storing it: who (user id), how (auth methods), for what (scope),
//! when (issued at in microseconds, expires at) and the audit ids that revocation events name.
//! Hex ids of 32 digits are packed as 16 bytes, so a project-scoped token stays near 200 chars.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

const FERNET_VERSION: u8 = 0x80;
const PAYLOAD_VERSION: u8 = 1;

/// One Fernet key: 16 bytes to sign, 16 to encrypt.
#[derive(Clone)]
pub struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl std::fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FernetKey(..)")
    }
}

impl FernetKey {
    pub fn generate() -> FernetKey {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        FernetKey::from_raw(&raw)
    }

    fn from_raw(raw: &[u8; 32]) -> FernetKey {
        let mut signing = [0u8; 16];
        let mut encryption = [0u8; 16];
        signing.copy_from_slice(&raw[..16]);
        encryption.copy_from_slice(&raw[16..]);
        FernetKey {
            signing,
            encryption,
        }
    }

    /// Parses the key file format: 32 bytes, base64url with padding (44 characters).
    pub fn from_base64(text: &str) -> Option<FernetKey> {
        let raw = URL_SAFE.decode(text.trim()).ok()?;
        let raw: [u8; 32] = raw.try_into().ok()?;
        Some(FernetKey::from_raw(&raw))
    }

    pub fn to_base64(&self) -> String {
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(&self.signing);
        raw[16..].copy_from_slice(&self.encryption);
        URL_SAFE.encode(raw)
    }

    /// Seals `plaintext` into a Fernet token (without base64 padding).
    pub fn encrypt(&self, plaintext: &[u8], timestamp: u64) -> String {
        let mut iv = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut iv);
        let ciphertext = Aes128CbcEnc::new(&self.encryption.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut message = Vec::with_capacity(1 + 8 + 16 + ciphertext.len() + 32);
        message.push(FERNET_VERSION);
        message.extend_from_slice(&timestamp.to_be_bytes());
        message.extend_from_slice(&iv);
        message.extend_from_slice(&ciphertext);
        let mut mac = HmacSha256::new_from_slice(&self.signing).expect("any key length");
        mac.update(&message);
        message.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(message)
    }

    /// Opens a token sealed with this key: `None` when it was not (bad HMAC) or is malformed.
    pub fn decrypt(&self, raw: &[u8]) -> Option<Vec<u8>> {
        if raw.len() < 1 + 8 + 16 + 16 + 32 || raw[0] != FERNET_VERSION {
            return None;
        }
        let (message, tag) = raw.split_at(raw.len() - 32);
        let mut mac = HmacSha256::new_from_slice(&self.signing).expect("any key length");
        mac.update(message);
        mac.verify_slice(tag).ok()?;
        let iv: [u8; 16] = message[9..25].try_into().ok()?;
        Aes128CbcDec::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&message[25..])
            .ok()
    }
}

/// Decodes a token's base64 (with or without padding) to the raw Fernet bytes.
pub fn decode_token(token: &str) -> Option<Vec<u8>> {
    let trimmed = token.trim().trim_end_matches('=');
    if trimmed.len() > 1024 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(trimmed).ok()
}

/// How the user proved who they are; the token lists these as `methods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password = 1,
    Token = 2,
    ApplicationCredential = 4,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::Password,
        AuthMethod::Token,
        AuthMethod::ApplicationCredential,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Token => "token",
            AuthMethod::ApplicationCredential => "application_credential",
        }
    }
}

/// What a token is scoped to, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Unscoped,
    Project(String),
    Domain(String),
    System,
}

/// Everything a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPayload {
    pub user_id: String,
    pub methods: Vec<AuthMethod>,
    pub scope: TokenScope,
    /// Microseconds since the epoch.
    pub issued_at_us: i64,
    /// Microseconds since the epoch.
    pub expires_at_us: i64,
    /// This token's audit id, then (for a token made from a token) its chain's first audit id.
    pub audit_ids: Vec<[u8; 16]>,
    pub application_credential_id: Option<String>,
}

impl TokenPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(PAYLOAD_VERSION);
        let (scope_kind, scope_id) = match &self.scope {
            TokenScope::Unscoped => (0u8, None),
            TokenScope::Project(id) => (1, Some(id)),
            TokenScope::Domain(id) => (2, Some(id)),
            TokenScope::System => (3, None),
        };
        out.push(scope_kind);
        out.push(self.methods.iter().fold(0u8, |bits, m| bits | *m as u8));
        out.extend_from_slice(&self.issued_at_us.to_be_bytes());
        out.extend_from_slice(&self.expires_at_us.to_be_bytes());
        put_id(&mut out, &self.user_id);
        if let Some(id) = scope_id {
            put_id(&mut out, id);
        }
        out.push(self.audit_ids.len() as u8);
        for audit in &self.audit_ids {
            out.extend_from_slice(audit);
        }
        match &self.application_credential_id {
            Some(id) => {
                out.push(1);
                put_id(&mut out, id);
            }
            None => out.push(0),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TokenPayload> {
        let mut r = Reader { bytes, pos: 0 };
        if r.u8()? != PAYLOAD_VERSION {
            return None;
        }
        let scope_kind = r.u8()?;
        let method_bits = r.u8()?;
        let issued_at_us = r.i64()?;
        let expires_at_us = r.i64()?;
        let user_id = r.id()?;
        let scope = match scope_kind {
            0 => TokenScope::Unscoped,
            1 => TokenScope::Project(r.id()?),
            2 => TokenScope::Domain(r.id()?),
            3 => TokenScope::System,
            _ => return None,
        };
        let audit_count = r.u8()? as usize;
        let mut audit_ids = Vec::with_capacity(audit_count);
        for _ in 0..audit_count {
            audit_ids.push(r.take(16)?.try_into().ok()?);
        }
        let application_credential_id = match r.u8()? {
            0 => None,
            _ => Some(r.id()?),
        };
        let methods = AuthMethod::ALL
            .into_iter()
            .filter(|m| method_bits & *m as u8 != 0)
            .collect();
        Some(TokenPayload {
            user_id,
            methods,
            scope,
            issued_at_us,
            expires_at_us,
            audit_ids,
            application_credential_id,
        })
    }
}

/// A fresh random audit id.
pub fn new_audit_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    id
}

/// Keystone's spelling of an audit id: 22 characters of base64url.
pub fn audit_id_text(id: &[u8; 16]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

pub fn parse_audit_id(text: &str) -> Option<[u8; 16]> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// Ids: 32 lowercase hex digits pack into 16 bytes (tag 0); anything else is length-prefixed.
fn put_id(out: &mut Vec<u8>, id: &str) {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        out.push(0);
        for pair in id.as_bytes().chunks(2) {
            let hex = std::str::from_utf8(pair).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
        }
    } else {
        let bytes = &id.as_bytes()[..id.len().min(255)];
        out.push(1);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn id(&mut self) -> Option<String> {
        match self.u8()? {
            0 => {
                let raw = self.take(16)?;
                Some(raw.iter().map(|b| format!("{b:02x}")).collect())
            }
            1 => {
                let len = self.u8()? as usize;
                String::from_utf8(self.take(len)?.to_vec()).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(scope: TokenScope) -> TokenPayload {
        TokenPayload {
            user_id: "0123456789abcdef0123456789abcdef".into(),
            methods: vec![AuthMethod::Password, AuthMethod::Token],
            scope,
            issued_at_us: 1_764_000_000_123_456,
            expires_at_us: 1_764_003_600_123_456,
            audit_ids: vec![new_audit_id(), new_audit_id()],
            application_credential_id: None,
        }
    }

    #[test]
    fn payload_round_trips_for_every_scope() {
        for scope in [
            TokenScope::Unscoped,
            TokenScope::Project("fedcba9876543210fedcba9876543210".into()),
            TokenScope::Domain("default".into()),
            TokenScope::System,
        ] {
            let p = payload(scope);
            assert_eq!(TokenPayload::decode(&p.encode()), Some(p));
        }
        let mut with_app_cred = payload(TokenScope::Project("p".into()));
        with_app_cred.application_credential_id = Some("abcdef0123456789abcdef0123456789".into());
        with_app_cred.methods = vec![AuthMethod::ApplicationCredential];
        assert_eq!(
            TokenPayload::decode(&with_app_cred.encode()),
            Some(with_app_cred)
        );
    }

    #[test]
    fn truncated_payload_is_rejected() {
        let bytes = payload(TokenScope::System).encode();
        for len in 0..bytes.len() {
            assert!(
                TokenPayload::decode(&bytes[..len]).is_none(),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn fernet_round_trip_and_tamper_detection() {
        let key = FernetKey::generate();
        let token = key.encrypt(b"hello", 42);
        assert!(!token.contains('='));
        let raw = decode_token(&token).unwrap();
        assert_eq!(key.decrypt(&raw).unwrap(), b"hello");
        let mut tampered = raw.clone();
        tampered[30] ^= 1;
        assert!(key.decrypt(&tampered).is_none());
        assert!(FernetKey::generate().decrypt(&raw).is_none());
    }

    #[test]
    fn key_file_format_round_trips() {
        let key = FernetKey::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let again = FernetKey::from_base64(&text).unwrap();
        let token = key.encrypt(b"x", 1);
        assert_eq!(again.decrypt(&decode_token(&token).unwrap()).unwrap(), b"x");
        assert!(FernetKey::from_base64("short").is_none());
    }

    #[test]
    fn project_token_is_short() {
        let key = FernetKey::generate();
        let p = payload(TokenScope::Project(
            "fedcba9876543210fedcba9876543210".into(),
        ));
        let token = key.encrypt(&p.encode(), 1);
        assert!(token.len() < 255, "token is {} chars", token.len());
    }
}
