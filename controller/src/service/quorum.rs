//! Quorum membership: DescribeQuorum, AddController, RemoveController.
//!
//! A controller joins as a raft learner (it receives the log but does not
//! vote), catches up from a snapshot, and only then becomes a voter, so adding
//! it never makes the quorum wait for a member that has nothing. Each step is
//! one raft configuration change (ConfChangeV2); the controllers' addresses
//! ride in the same entry, so every member learns where the new one is exactly
//! when it becomes a member. Removing the leader first hands leadership to
//! the most up-to-date other voter.

use std::time::Duration;

use baton_proto::v1 as pb;
use baton_proto::v1::ErrorCode;
use baton_state_machine::Command;
use raft::prelude::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use tonic::{Code, Status};

use super::{invalid, not_leader, propose_error, typed_status};
use crate::Shared;
use crate::raft::{ProposeError, RaftHandle, RaftStatus};

/// Default bound on a learner's catch-up before promotion.
const DEFAULT_CATCH_UP: Duration = Duration::from_secs(60);
/// Bound on a leadership transfer before removing the old leader.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

pub fn describe(handle: &RaftHandle) -> pb::DescribeQuorumResponse {
    let s = handle.status();
    let member = |id: &u64, is_learner: bool| pb::QuorumMember {
        id: *id,
        address: handle.peer_address(*id).unwrap_or_default(),
        match_index: s.match_index.get(id).copied().unwrap_or(0),
        is_learner,
        last_contact_ms: handle.last_contact(*id).map_or(-1, |d| d.as_millis() as i64),
    };
    // During a joint change, voters of the outgoing configuration that are
    // not in the incoming one still vote: list them as voters too.
    let mut voters: Vec<u64> = s.voters.clone();
    voters.extend(s.voters_outgoing.iter().filter(|id| !s.voters.contains(id)));
    voters.sort_unstable();
    pb::DescribeQuorumResponse {
        leader: s.leader_id,
        term: s.term,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        voters: voters.iter().map(|id| member(id, false)).collect(),
        learners: s.learners.iter().map(|id| member(id, true)).collect(),
        node_id: s.id,
    }
}

fn refused(message: impl Into<String>) -> Status {
    typed_status(Code::FailedPrecondition, ErrorCode::MembershipChangeRefused, message)
}

/// A busy raft (another change pending) is a typed refusal, not UNAVAILABLE.
fn change_error(e: ProposeError, handle: &RaftHandle) -> Status {
    match e {
        ProposeError::Dropped(reason) => refused(reason),
        other => propose_error(other, handle),
    }
}

/// Bound on waiting for an earlier change (or a new leader's first entry,
/// which raft-rs treats as a pending change) to be applied.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Proposes a change, retrying while raft is busy with an earlier one; once
/// applied, waits until the published status shows it (the driver publishes
/// after its loop turn, the proposer hears during it).
async fn change_conf(handle: &RaftHandle, change: ConfChangeV2) -> Result<(), Status> {
    let deadline = tokio::time::Instant::now() + BUSY_RETRY;
    loop {
        match handle.change_conf(change.clone()).await {
            Ok(proposed) => {
                let mut status = handle.subscribe_status();
                let shown = status.wait_for(|s| s.applied_index >= proposed.index);
                let _ = tokio::time::timeout(Duration::from_secs(5), shown).await;
                return Ok(());
            }
            Err(ProposeError::Dropped(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(change_error(e, handle)),
        }
    }
}

fn single(change_type: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    let mut c = ConfChangeSingle::default();
    c.set_change_type(change_type);
    c.node_id = node_id;
    c
}

fn conf_change(changes: Vec<ConfChangeSingle>, addresses: Command) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    cc.set_transition(ConfChangeTransition::Auto);
    cc.set_changes(changes.into());
    cc.context = addresses.encode().into();
    cc
}

/// `host:port` with a numeric port and a non-empty host.
fn validate_address(address: &str) -> Result<(), Status> {
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if valid { Ok(()) } else { Err(invalid(format!("controller address {address:?} is not host:port"))) }
}

pub async fn add(shared: &Shared, req: pb::AddControllerRequest) -> Result<pb::AddControllerResponse, Status> {
    let handle = &shared.raft;
    if req.id == 0 {
        return Err(invalid("controller ids start at 1"));
    }
    validate_address(&req.address)?;
    let status = handle.status();
    if !status.is_leader {
        return Err(not_leader(handle));
    }
    let known = handle.peer_address(req.id);
    let is_voter = status.voters.contains(&req.id);
    let is_learner = status.learners.contains(&req.id);
    if (is_voter || is_learner) && known.as_deref() != Some(req.address.as_str()) {
        return Err(typed_status(
            Code::AlreadyExists,
            ErrorCode::ControllerAlreadyExists,
            format!("controller {} is already a member at {}", req.id, known.unwrap_or_default()),
        ));
    }
    if is_voter {
        return Ok(pb::AddControllerResponse { quorum: Some(describe(handle)) });
    }
    if !is_learner {
        let addresses = Command::ControllerAddresses { set: vec![(req.id, req.address.clone())], removed: vec![] };
        let change = conf_change(vec![single(ConfChangeType::AddLearnerNode, req.id)], addresses);
        change_conf(handle, change).await?;
        tracing::info!(id = req.id, address = %req.address, "controller added as a learner");
    }
    if req.learner_only {
        return Ok(pb::AddControllerResponse { quorum: Some(describe(handle)) });
    }
    let timeout = match req.catch_up_timeout_ms {
        0 => DEFAULT_CATCH_UP,
        ms => Duration::from_millis(u64::from(ms)),
    };
    wait_caught_up(handle, req.id, timeout).await?;
    let addresses = Command::ControllerAddresses { set: vec![(req.id, req.address.clone())], removed: vec![] };
    let change = conf_change(vec![single(ConfChangeType::AddNode, req.id)], addresses);
    change_conf(handle, change).await?;
    tracing::info!(id = req.id, "controller promoted to voter");
    Ok(pb::AddControllerResponse { quorum: Some(describe(handle)) })
}

/// Waits until the learner has everything that was committed when the wait
/// began (the leader's view of its log), while this node stays leader.
async fn wait_caught_up(handle: &RaftHandle, id: u64, timeout: Duration) -> Result<(), Status> {
    let mut status = handle.subscribe_status();
    let target = status.borrow().commit_index;
    let caught_up = |s: &RaftStatus| s.match_index.get(&id).is_some_and(|m| *m >= target);
    let wait = async {
        loop {
            {
                let s = status.borrow_and_update();
                if !s.is_leader {
                    return Err(not_leader(handle));
                }
                if caught_up(&s) {
                    return Ok(());
                }
            }
            if status.changed().await.is_err() {
                return Err(propose_error(ProposeError::Shutdown, handle));
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        // FAILED_PRECONDITION, not DEADLINE_EXCEEDED: clients must not retry
        // this on every controller in turn.
        Err(_) => Err(typed_status(
            Code::FailedPrecondition,
            ErrorCode::Timeout,
            format!(
                "controller {id} did not catch up to index {target} within {} ms; it stays a learner \
                 (is it running with --join and reachable?); add it again to resume",
                timeout.as_millis()
            ),
        )),
    }
}

/// Voters this leader heard from within one election timeout (itself included).
fn recently_active(shared: &Shared, status: &RaftStatus) -> Vec<u64> {
    let window = shared.config.election_timeout();
    status.voters.iter().copied().filter(|v| shared.raft.last_contact(*v).is_some_and(|age| age <= window)).collect()
}

/// What removing `id` leaves: Ok, or why the remaining voters could not
/// commit (no recently active majority among them).
fn check_remaining_majority(voters: &[u64], active: &[u64], id: u64) -> Result<(), String> {
    let remaining: Vec<u64> = voters.iter().copied().filter(|v| *v != id).collect();
    if remaining.is_empty() {
        return Err("cannot remove the last voter".to_owned());
    }
    let active = remaining.iter().filter(|v| active.contains(v)).count();
    if active * 2 <= remaining.len() {
        return Err(format!(
            "only {active} of the {} remaining voters {remaining:?} were heard from recently: the quorum \
             could not commit after removing {id} (pass force to do it anyway)",
            remaining.len()
        ));
    }
    Ok(())
}

pub enum Removal {
    Done(pb::RemoveControllerResponse),
    /// This node was the one to remove and handed leadership away: the
    /// caller forwards the request to the new leader at this address.
    Forward(String),
}

pub async fn remove(shared: &Shared, req: &pb::RemoveControllerRequest) -> Result<Removal, Status> {
    let handle = &shared.raft;
    let status = handle.status();
    if !status.is_leader {
        return Err(not_leader(handle));
    }
    let is_voter = status.voters.contains(&req.id);
    if !is_voter && !status.learners.contains(&req.id) {
        return Err(typed_status(
            Code::NotFound,
            ErrorCode::ControllerNotFound,
            format!("controller {} is not a member of the quorum", req.id),
        ));
    }
    // A member counts as silent only after a full window in which this
    // leader could have heard it: a leader elected a moment ago has heard
    // only the voters that voted for it, so it looks again for a while.
    let window = shared.config.election_timeout() * 2;
    let started = tokio::time::Instant::now();
    let active = loop {
        let active = recently_active(shared, &status);
        let check = if is_voter { check_remaining_majority(&status.voters, &active, req.id) } else { Ok(()) };
        match check {
            Ok(()) => break active,
            Err(_) if req.force && status.voters.len() > 1 => break active,
            Err(reason) if started.elapsed() >= window || status.voters.len() == 1 => return Err(refused(reason)),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    if req.id == status.id {
        return transfer_away(handle, &status, &active).await.map(Removal::Forward);
    }
    let addresses = Command::ControllerAddresses { set: vec![], removed: vec![req.id] };
    let change = conf_change(vec![single(ConfChangeType::RemoveNode, req.id)], addresses);
    change_conf(handle, change).await?;
    tracing::info!(id = req.id, "controller removed from the quorum");
    Ok(Removal::Done(pb::RemoveControllerResponse { quorum: Some(describe(handle)) }))
}

/// Hands leadership to the most up-to-date other voter and waits until
/// someone else leads; returns the new leader's address.
async fn transfer_away(handle: &RaftHandle, status: &RaftStatus, active: &[u64]) -> Result<String, Status> {
    let me = status.id;
    let to = status
        .voters
        .iter()
        .copied()
        .filter(|v| *v != me && active.contains(v))
        .max_by_key(|v| (status.match_index.get(v).copied().unwrap_or(0), std::cmp::Reverse(*v)))
        .ok_or_else(|| refused("no other recently active voter to hand leadership to"))?;
    tracing::info!(to, "removing this controller: handing leadership over first");
    let mut watch = handle.subscribe_status();
    let wait = async {
        let mut asked = tokio::time::Instant::now() - Duration::from_secs(1);
        loop {
            {
                let s = watch.borrow_and_update();
                if s.leader_id != 0 && s.leader_id != me {
                    return Ok::<u64, Status>(s.leader_id);
                }
            }
            // raft-rs abandons a transfer after an election timeout: ask again.
            if asked.elapsed() >= Duration::from_millis(500) && watch.borrow().is_leader {
                handle.transfer_leader(to).await.map_err(|e| propose_error(e, handle))?;
                asked = tokio::time::Instant::now();
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        }
    };
    let leader = tokio::time::timeout(TRANSFER_TIMEOUT, wait)
        .await
        .map_err(|_| typed_status(Code::Unavailable, ErrorCode::Timeout, "leadership transfer timed out; retry"))??;
    handle.peer_address(leader).ok_or_else(|| not_leader(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_needs_an_active_majority_of_the_rest() {
        assert!(check_remaining_majority(&[1, 2, 3], &[1, 2, 3], 3).is_ok());
        // 3 is dead: removing 3 leaves {1, 2}, both active.
        assert!(check_remaining_majority(&[1, 2, 3], &[1, 2], 3).is_ok());
        // 3 is dead: removing 2 leaves {1, 3} with one active: no majority.
        assert!(check_remaining_majority(&[1, 2, 3], &[1, 2], 2).is_err());
        assert!(check_remaining_majority(&[1], &[1], 1).is_err());
        assert!(check_remaining_majority(&[1, 2, 3, 4, 5], &[1, 2, 3], 5).is_ok());
        assert!(check_remaining_majority(&[1, 2, 3, 4], &[1, 2], 4).is_ok());
        assert!(check_remaining_majority(&[1, 2, 3, 4], &[1, 2], 1).is_err());
    }

    #[test]
    fn addresses_must_be_host_and_port() {
        for good in ["127.0.0.1:7101", "ctl-4.baton:7100", "[::1]:7100"] {
            assert!(validate_address(good).is_ok(), "{good}");
        }
        for bad in ["", "host", ":7100", "host:0", "host:port", "http://h:1", "h:70000"] {
            assert!(validate_address(bad).is_err(), "{bad}");
        }
    }
}
