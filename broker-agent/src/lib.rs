//! Baton agent.
