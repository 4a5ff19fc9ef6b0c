use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not root (or no CAP_NET_ADMIN): nothing was changed.
    #[error(
        "the network data plane needs root (network namespaces, bridges, nftables): run as root \
         (sudo), or run without the data plane (the fake netplane)"
    )]
    NotRoot,
    /// A helper program is missing.
    #[error("{program} is not installed: {hint}")]
    Missing { program: String, hint: String },
    /// The desired state is not valid; nothing was changed.
    #[error("invalid desired state: {0}")]
    Invalid(String),
    /// A command failed; the message has the command line and its stderr.
    #[error("{0}")]
    Command(String),
    #[error("{0}")]
    Io(String),
    /// An injected failure (fake).
    #[error("injected failure: {0}")]
    Injected(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e.to_string())
    }
}
