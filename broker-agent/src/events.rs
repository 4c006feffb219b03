//! What subscribers see: partition views and the leadership changes of each
//! applied update.

use std::sync::Arc;

/// One partition as this broker's view holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub topic: Arc<str>,
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    /// host:port of the leader; empty when there is none or it is unknown.
    pub leader_endpoint: Arc<str>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Arc<[i32]>,
    pub isr: Arc<[i32]>,
    /// The view says this broker leads (whether or not its lease is valid).
    pub is_leader: bool,
    /// This broker is one of the replicas.
    pub is_replica: bool,
}

/// How a partition changed for this broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// This broker now leads, or still leads at a new leader epoch.
    BecameLeader,
    /// This broker led and no longer does.
    BecameFollower,
    /// Another broker's leadership (leader, epoch or endpoint) changed, or the
    /// partition is new to this broker's view and led elsewhere or nowhere.
    LeaderChanged,
    /// Leadership is unchanged but replicas, ISR or partition epoch changed
    /// (a leader needs the ISR to advance its high watermark).
    Updated,
    /// The partition left the view (its topic was deleted, or a full update
    /// no longer lists it). The view is the last one held.
    Removed,
}

/// One partition's change within an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionChange {
    pub kind: ChangeKind,
    /// The view after the change (the last one held, for `Removed`): the
    /// table's own copy, shared, so a mass election publishes one pointer
    /// per partition instead of copying each view.
    pub view: Arc<PartitionView>,
}

/// The changes one applied `LeadershipUpdate` made, published once per update
/// (never once per partition, so a mass election is one event).
#[derive(Clone, Debug)]
pub struct LeadershipEvent {
    /// The metadata version the view reached with this update.
    pub metadata_version: u64,
    /// The update replaced the whole view.
    pub full: bool,
    /// Partitions whose state changed; unchanged ones are left out.
    pub changes: Arc<[PartitionChange]>,
    /// Topics that left the view with this update.
    pub deleted_topics: Arc<[Arc<str>]>,
}
