//! One module per Kafka API; this one routes requests and answers ApiVersions.

mod fetch;
mod metadata;
mod offsets;
mod produce;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, ListOffsetsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, ProduceRequest,
};
use kafka_protocol::protocol::Decodable;

use crate::Broker;
use crate::wire::{WireError, encode_response, split_endpoint};

/// Kafka error codes this broker answers besides the agent's (6, 3, 74, 75).
pub(crate) mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_RECORD: i16 = 87;
}

/// The versions served, per API. Produce from 3 and Fetch from 4 (record
/// batches, magic 2, only); Fetch up to 12 (topics by name; 13 and later
/// name them by id); Produce up to 10 (KIP-951's CurrentLeader hint).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 10),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ApiVersions, 0, 3),
];

pub(crate) fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

fn decode<M: Decodable>(body: &mut Bytes, version: i16) -> Result<M, WireError> {
    M::decode(body, version).map_err(WireError::codec)
}

pub(crate) async fn dispatch(
    broker: &Broker,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> Result<Option<BytesMut>, WireError> {
    let response = match key {
        ApiKey::ApiVersions => {
            let _request: ApiVersionsRequest = decode(&mut body, version)?;
            encode_response(correlation_id, &api_versions(code::NONE), version)?
        }
        ApiKey::Metadata => {
            let request: MetadataRequest = decode(&mut body, version)?;
            encode_response(correlation_id, &metadata::handle(broker, &request, version), version)?
        }
        ApiKey::Produce => {
            let request: ProduceRequest = decode(&mut body, version)?;
            match produce::handle(broker, request, version).await {
                Some(response) => encode_response(correlation_id, &response, version)?,
                None => return Ok(None),
            }
        }
        ApiKey::Fetch => {
            let request: FetchRequest = decode(&mut body, version)?;
            encode_response(correlation_id, &fetch::handle(broker, &request, version).await, version)?
        }
        ApiKey::ListOffsets => {
            let request: ListOffsetsRequest = decode(&mut body, version)?;
            encode_response(correlation_id, &offsets::list_offsets(broker, &request, version), version)?
        }
        ApiKey::OffsetForLeaderEpoch => {
            let request: OffsetForLeaderEpochRequest = decode(&mut body, version)?;
            encode_response(correlation_id, &offsets::offset_for_leader_epoch(broker, &request, version), version)?
        }
        other => return Err(WireError::Codec(format!("unsupported api {other:?}"))),
    };
    Ok(Some(response))
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    response
}

pub(crate) fn api_versions_unsupported(correlation_id: i32) -> Result<BytesMut, WireError> {
    encode_response(correlation_id, &api_versions(code::UNSUPPORTED_VERSION), 0)
}

/// A broker's (host, port) from its registered endpoint.
pub(crate) fn endpoint_of(endpoint: &str) -> Option<(kafka_protocol::protocol::StrBytes, i32)> {
    split_endpoint(endpoint)
        .map(|(host, port)| (kafka_protocol::protocol::StrBytes::from_string(host.to_owned()), port))
}

/// The leader hint of a refusal: (leader id or -1, leader epoch, endpoint).
pub(crate) fn hint(refusal: &baton_agent::NotLeader) -> (i32, i32, Option<(i32, Arc<str>)>) {
    let leader = refusal.leader.as_ref().map_or(-1, |(id, _)| *id);
    (leader, refusal.leader_epoch, refusal.leader.clone().filter(|(_, e)| !e.is_empty()))
}
