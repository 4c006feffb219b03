//! Identities carried by certificates, as SPIFFE URI SANs:
//! `spiffe://<trust-domain>/<kind>/<name>`.
//!
//! | kind         | name            | may                                            |
//! |--------------|-----------------|------------------------------------------------|
//! | `controller` | raft id (>= 1)  | raft messages, forwarded writes, everything    |
//! | `broker`     | broker id (>= 0)| register and heartbeat as that broker; reads   |
//! | `admin`      | any             | admin RPCs (topics, elections, drain, quorum)  |
//! | `client`     | any             | read RPCs only                                 |

use std::fmt;
use std::net::SocketAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Who a certificate says its holder is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    Controller(u64),
    Broker(i32),
    Admin(String),
    Client(String),
}

/// Why a certificate names no usable identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("certificate does not parse: {0}")]
    Malformed(String),
    #[error("certificate has no spiffe://{0}/ URI SAN naming a controller, broker, admin or client")]
    NoIdentity(String),
    #[error("certificate names {0} identities in trust domain {1}; exactly one is allowed")]
    Ambiguous(usize, String),
}

const SCHEME: &str = "spiffe://";
/// Longest accepted name of an admin or client identity.
const MAX_NAME: usize = 128;

impl Principal {
    /// The SPIFFE URI of this identity in `trust_domain`.
    pub fn uri(&self, trust_domain: &str) -> String {
        format!("{SCHEME}{trust_domain}/{self}")
    }

    /// Parses `spiffe://<trust_domain>/<kind>/<name>`; `None` for another
    /// trust domain, another scheme, an unknown kind or a bad name.
    pub fn parse_uri(uri: &str, trust_domain: &str) -> Option<Principal> {
        let rest = uri.strip_prefix(SCHEME)?.strip_prefix(trust_domain)?.strip_prefix('/')?;
        Principal::parse_path(rest)
    }

    /// Parses `<kind>/<name>` (the form [`fmt::Display`] prints).
    pub fn parse_path(path: &str) -> Option<Principal> {
        let (kind, name) = path.split_once('/')?;
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= MAX_NAME
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        match kind {
            "controller" => name.parse::<u64>().ok().filter(|id| *id >= 1).map(Principal::Controller),
            "broker" => name.parse::<i32>().ok().filter(|id| *id >= 0).map(Principal::Broker),
            "admin" if valid_name(name) => Some(Principal::Admin(name.to_owned())),
            "client" if valid_name(name) => Some(Principal::Client(name.to_owned())),
            _ => None,
        }
    }

    /// The one identity a DER certificate names in `trust_domain`.
    pub fn from_cert_der(der: &[u8], trust_domain: &str) -> Result<Principal, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let san = cert.subject_alternative_name().map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let mut found: Vec<Principal> = san
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::URI(uri) => Principal::parse_uri(uri, trust_domain),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        match found.len() {
            0 => Err(IdentityError::NoIdentity(trust_domain.to_owned())),
            1 => Ok(found.remove(0)),
            n => Err(IdentityError::Ambiguous(n, trust_domain.to_owned())),
        }
    }

    pub fn is_controller(&self) -> bool {
        matches!(self, Principal::Controller(_))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Controller(id) => write!(f, "controller/{id}"),
            Principal::Broker(id) => write!(f, "broker/{id}"),
            Principal::Admin(name) => write!(f, "admin/{name}"),
            Principal::Client(name) => write!(f, "client/{name}"),
        }
    }
}

/// What one connection proved about its peer; tonic puts it in every
/// request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub remote: Option<SocketAddr>,
    /// `None` on a plaintext listener: nothing was proven.
    pub principal: Option<Principal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_foreign_or_bad_ones_are_refused() {
        for p in [
            Principal::Controller(3),
            Principal::Broker(0),
            Principal::Admin("alice".into()),
            Principal::Client("dash-1".into()),
        ] {
            assert_eq!(Principal::parse_uri(&p.uri("prod"), "prod"), Some(p.clone()));
            assert_eq!(Principal::parse_uri(&p.uri("prod"), "staging"), None);
        }
        for bad in [
            "spiffe://prod/controller/0",
            "spiffe://prod/broker/-1",
            "spiffe://prod/broker/x",
            "spiffe://prod/admin/",
            "spiffe://prod/admin/a/b",
            "spiffe://prod/root/1",
            "https://prod/admin/alice",
            "spiffe://production/admin/alice",
        ] {
            assert_eq!(Principal::parse_uri(bad, "prod"), None, "{bad}");
        }
    }
}
