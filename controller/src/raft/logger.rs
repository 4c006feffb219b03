//! raft-rs logs through slog; forward its records to tracing.

pub(crate) fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(tracing_slog::TracingSlogDrain, slog::o!("raft_id" => id))
}
