//! Identifiers: fresh ids in the two spellings OpenStack uses, and a macro for typed ids so that
//! a project id cannot be passed where a user id is expected.

/// Keystone's spelling: 32 lowercase hex digits, no dashes.
pub fn new_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Nova's, Neutron's, Glance's and Cinder's spelling: a dashed UUID.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Declares a typed id: a `String` newtype with `Display`, `FromStr`-free construction through
/// `From<String>`/`From<&str>`, serde as a plain string, and `as_str()`.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    typed_id!(
        /// A test id.
        ThingId
    );

    #[test]
    fn ids_have_openstack_spellings() {
        let hex = new_hex_id();
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(new_uuid().len(), 36);
        let id = ThingId::from("abc");
        assert_eq!(id.to_string(), "abc");
        assert_eq!(id.as_str(), "abc");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"abc\"");
    }
}
