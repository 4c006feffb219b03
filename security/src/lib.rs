//! Transport security for every Baton link.
//!
//! - [`config`]: the `[tls]` section every binary reads (CA, certificate,
//!   key, trust domain, reload interval, explicit plaintext).
//! - [`identity`]: who a peer is, read from its certificate's SPIFFE URI SAN
//!   (`spiffe://<trust-domain>/controller/3`, `.../broker/7`, `.../admin/alice`,
//!   `.../client/dashboard`). Addresses never identify anyone.
//! - [`pki`]: certificates and keys loaded from files, checked, and reloaded
//!   in place when the files change (rotation without a restart).
//! - [`server`]: a bounded accept loop doing the TLS handshake off the accept
//!   path, handing tonic connections that carry the proven [`identity::Peer`].
//! - [`client`]: a tonic connector that dials with the current certificate
//!   and checks that the server is the controller it expects.
//! - [`certs`]: a development CA and certificates (`batonctl certs`).
//!
//! Exactly one crypto provider (ring) is used everywhere; configurations are
//! built with it explicitly, never from a process-wide default.

pub mod certs;
pub mod client;
pub mod config;
pub mod identity;
pub mod pki;
pub mod server;

pub use client::{Connector, Expect};
pub use config::TlsConfig;
pub use identity::{Peer, Principal};
pub use pki::Tls;
