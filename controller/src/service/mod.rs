//! The gRPC services every controller serves on its one port: the public
//! `Controller` API ([`controller`]), the agents' `BrokerSession`
//! ([`session`]); the peer-only `Raft` service lives in `crate::raft::transport`.
//!
//! Errors leave as statuses carrying `baton-error` (a typed [`ErrorCode`]
//! name) and, when this node is not the leader, `baton-leader`.

pub mod auth;
pub mod controller;
pub mod convert;
pub mod forward;
pub mod quorum;
pub mod session;

use baton_proto::v1::ErrorCode;
use baton_proto::{ERROR_METADATA_KEY, LEADER_METADATA_KEY};
use baton_state_machine::StateError;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::raft::{ProposeError, RaftHandle};

/// A status with the typed error code attached.
pub fn typed_status(code: Code, error: ErrorCode, message: impl Into<String>) -> Status {
    let mut md = MetadataMap::new();
    let name = error.as_str_name().trim_start_matches("ERROR_CODE_");
    if let Ok(v) = MetadataValue::try_from(name) {
        md.insert(ERROR_METADATA_KEY, v);
    }
    Status::with_metadata(code, message, md)
}

/// Maps a state-machine rejection to its documented status.
pub fn state_error(e: &StateError) -> Status {
    use StateError as E;
    let (code, ec) = match e {
        E::TopicNotFound(_) => (Code::NotFound, ErrorCode::TopicNotFound),
        E::PartitionNotFound { .. } => (Code::NotFound, ErrorCode::PartitionNotFound),
        E::TopicAlreadyExists(_) => (Code::AlreadyExists, ErrorCode::TopicAlreadyExists),
        E::InvalidTopicName { .. } => (Code::InvalidArgument, ErrorCode::InvalidTopicName),
        E::InvalidPartitions(_) => (Code::InvalidArgument, ErrorCode::InvalidPartitions),
        E::InvalidReplicationFactor { requested, .. } if *requested < 1 => {
            (Code::InvalidArgument, ErrorCode::InvalidReplicationFactor)
        }
        E::InvalidReplicationFactor { .. } => (Code::FailedPrecondition, ErrorCode::InvalidReplicationFactor),
        E::StaleBrokerEpoch { .. } => (Code::FailedPrecondition, ErrorCode::StaleBrokerEpoch),
        E::DuplicateBrokerRegistration { .. } => (Code::AlreadyExists, ErrorCode::DuplicateBrokerRegistration),
        E::BrokerNotFound(_) => (Code::NotFound, ErrorCode::BrokerNotFound),
        E::BrokerFenced(_) => (Code::FailedPrecondition, ErrorCode::BrokerFenced),
        E::StalePartitionEpoch { .. } => (Code::Aborted, ErrorCode::StalePartitionEpoch),
        E::EligibleLeadersNotAvailable { .. } => (Code::FailedPrecondition, ErrorCode::EligibleLeadersNotAvailable),
        E::ElectionNotNeeded { .. } => (Code::FailedPrecondition, ErrorCode::ElectionNotNeeded),
        E::InvalidRequest(_) => (Code::InvalidArgument, ErrorCode::InvalidRequest),
        E::DrainInProgress { .. } => (Code::FailedPrecondition, ErrorCode::DrainInProgress),
        E::BrokerNotDrained(_) => (Code::FailedPrecondition, ErrorCode::BrokerNotDrained),
    };
    typed_status(code, ec, e.to_string())
}

/// The error code of a state-machine rejection, for per-item results.
pub fn state_error_code(e: &StateError) -> ErrorCode {
    let status = state_error(e);
    status
        .metadata()
        .get(ERROR_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|n| ErrorCode::from_str_name(&format!("ERROR_CODE_{n}")))
        .unwrap_or(ErrorCode::Unspecified)
}

/// UNAVAILABLE naming the leader (when known) so the caller can go there.
pub fn not_leader(handle: &RaftHandle) -> Status {
    let mut status = typed_status(Code::Unavailable, ErrorCode::NotControllerLeader, "not the controller leader");
    if let Some((id, addr)) = handle.remote_leader()
        && let Ok(v) = MetadataValue::try_from(format!("{id}={addr}"))
    {
        status.metadata_mut().insert(LEADER_METADATA_KEY, v);
    }
    status
}

pub fn propose_error(e: ProposeError, handle: &RaftHandle) -> Status {
    match e {
        ProposeError::NotLeader { .. } => not_leader(handle),
        ProposeError::Timeout => typed_status(Code::Unavailable, ErrorCode::Timeout, e.to_string()),
        ProposeError::Ambiguous | ProposeError::Dropped(_) | ProposeError::Shutdown => {
            typed_status(Code::Unavailable, ErrorCode::NotControllerLeader, e.to_string())
        }
    }
}

pub fn invalid(message: impl Into<String>) -> Status {
    typed_status(Code::InvalidArgument, ErrorCode::InvalidRequest, message)
}
