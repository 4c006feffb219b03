//! Fuzzing entry point: decode the bytes as every baton.v1 message a peer,
//! an agent or a client can send (`fuzz/` runs it under libFuzzer). prost
//! decoding must fail cleanly, never panic, whatever the bytes.

use prost::Message;

use crate::v1;

pub fn decode_all(data: &[u8]) {
    macro_rules! decode {
        ($($t:ty),* $(,)?) => { $( let _ = <$t>::decode(data); )* };
    }
    decode!(
        v1::CreateTopicRequest,
        v1::DeleteTopicRequest,
        v1::ListTopicsRequest,
        v1::DescribeTopicRequest,
        v1::GetPartitionLeaderRequest,
        v1::WatchLeadershipRequest,
        v1::ElectLeadersRequest,
        v1::ListBrokersRequest,
        v1::DescribeQuorumRequest,
        v1::RegisterBrokerRequest,
        v1::SessionRequest,
        v1::SessionResponse,
        v1::LeadershipUpdate,
        v1::RaftMessageBatch,
        v1::SnapshotChunk,
        v1::CheckRequest,
        v1::ProgressReport,
        v1::WatchRequest,
        v1::WatchEvent,
    );
}
