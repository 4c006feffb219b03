//! Baton's wire API: the `baton.v1` protobuf package, generated at build time.
//!
//! - [`v1::controller_client`] / [`v1::controller_server`]: the public API.
//! - [`v1::broker_session_client`] / [`v1::broker_session_server`]: agents.
//! - [`v1::raft_client`] / [`v1::raft_server`]: controller-to-controller only.
//! - [`v1::agent_client`] / [`v1::agent_server`]: the sidecar's local API.

#[doc(hidden)]
pub mod fuzzing;

pub mod v1 {
    tonic::include_proto!("baton.v1");
}

/// Encoded `FileDescriptorSet` of every baton.v1 file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("baton_descriptor");

/// Metadata key naming the controller leader on a refused request: `"<id>=<host:port>"`.
pub const LEADER_METADATA_KEY: &str = "baton-leader";
/// Metadata key carrying the [`v1::ErrorCode`] name of a typed error.
pub const ERROR_METADATA_KEY: &str = "baton-error";
/// Set on a request a follower controller forwarded, so it is never forwarded twice.
pub const FORWARDED_METADATA_KEY: &str = "baton-forwarded";
