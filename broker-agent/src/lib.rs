//! Baton broker agent: the library a Kafka-style broker embeds (or runs as
//! the `baton-agent` sidecar) to hold its session with the Baton controller
//! quorum and to enforce partition leadership locally.
//!
//! - [`Agent::check_produce`] / [`Agent::check_fetch`]: may this broker act
//!   as leader *now*? Answered from a local table and a lease deadline, with
//!   no lock, no await and no allocation on the Ok path.
//! - [`Agent::record_produce`] / [`Agent::record_replica_progress`]: O(1);
//!   the next heartbeat carries the changed offsets.
//! - [`Agent::request_isr_expansion`]: a leader asks for a caught-up
//!   follower's addition to the ISR (with
//!   [`AgentConfig::isr_expansion_by_request`]); see its contract.
//! - [`Agent::subscribe`]: one [`LeadershipEvent`] per applied update.
//! - [`Agent::shutdown`]: suspend, tell the controller, stop.
//!
//! Modules: `lease` (the deadline), `table` (the view and the checks),
//! `progress` (dirty set), `session` (the controller stream), `sidecar`
//! (the local gRPC API), `config`.

mod agent;
mod checks;
pub mod config;
mod events;
mod lease;
pub mod metrics;
mod progress;
mod session;
pub mod sidecar;
mod table;

pub use agent::{Agent, AgentError, AgentStatus, EVENT_CHANNEL_CAPACITY};
pub use checks::{NotLeader, RefusalReason, kafka_error};
pub use config::{AgentConfig, LogFormat, SidecarConfig};
pub use events::{ChangeKind, LeadershipEvent, PartitionChange, PartitionView};
pub use progress::{IsrRequestRefused, MAX_ISR_REQUESTS};
pub use session::MIN_EARLY_HEARTBEAT_GAP;
pub use sidecar::{SidecarListener, run};

#[doc(hidden)]
pub mod testing;
