//! The one task that owns raft-rs's `RawNode`.
//!
//! It runs the Ready loop in the order raft-rs documents (src/lib.rs of the
//! crate): send the leader's messages, install a snapshot, persist entries and
//! hard state (fsync), send the messages that waited for that, apply committed
//! entries, answer ReadIndex requests, advance, then handle the LightReady.
//! Nothing else touches the `RawNode`; storage errors stop the driver (a node
//! whose disk fails must not keep voting or leading).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use baton_state_machine::{Command, State};
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, trace, warn};

use super::read_rounds::{ReadReply, ReadRounds};
use super::transport::Transport;
use super::{COMMIT_PATH, DriverMsg, Members, PeerContact, ProposeError, Proposed, QuorumContact, RaftStatus, mono_us};
use crate::config::RaftConfig;
use crate::metadata::Metadata;
use crate::storage::RaftStorage;

/// Bound on driver messages handled per loop turn, so one Ready batches many
/// proposals but ticks are never starved.
const MAX_MSGS_PER_TURN: usize = 4096;

pub(crate) struct Driver {
    node: RawNode<RaftStorage>,
    storage: RaftStorage,
    metadata: Arc<Metadata>,
    rx: mpsc::Receiver<DriverMsg>,
    transport: Transport,
    status: watch::Sender<RaftStatus>,
    config: RaftConfig,
    /// Distinguishes this process's proposals from those of its earlier lives,
    /// whose entries may still be replayed from the log.
    boot_nonce: u64,
    next_seq: u64,
    pending: HashMap<u64, oneshot::Sender<Result<Proposed, ProposeError>>>,
    /// Linearizable reads: those taken this turn, and the ReadIndex rounds
    /// in flight.
    reads: ReadRounds,
    /// Index of the empty entry that opened this node's current leadership.
    term_start_index: u64,
    last_snapshot_index: u64,
    /// Confirmed by a ReadIndex round every tick while leading (see QuorumContact).
    quorum_contact: Arc<QuorumContact>,
    members: Arc<Members>,
    contact: Arc<PeerContact>,
}

/// Marks a ReadIndex context as a quorum-contact probe (followed by 8 bytes
/// of `mono_us`), never confused with a client read (24 bytes).
const CONTACT_PROBE: &[u8; 5] = b"LEASE";

impl Driver {
    /// Builds the node from storage: state machine from the latest snapshot,
    /// raft's applied index set to it, so the committed log after it replays.
    // One-time wiring: each argument is a distinct piece the driver owns.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        config: RaftConfig,
        storage: RaftStorage,
        metadata: Arc<Metadata>,
        rx: mpsc::Receiver<DriverMsg>,
        transport: Transport,
        status: watch::Sender<RaftStatus>,
        quorum_contact: Arc<QuorumContact>,
        members: Arc<Members>,
        contact: Arc<PeerContact>,
    ) -> anyhow::Result<Driver> {
        let applied = metadata.version();
        let raft_config = raft::Config {
            id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied,
            max_size_per_msg: config.max_size_per_msg,
            max_inflight_msgs: config.max_inflight_msgs,
            max_uncommitted_size: config.max_uncommitted_size,
            // Both default off in raft-rs; a leader that lost its quorum must
            // step down (its lease-granting stops), and a partitioned node
            // must not disrupt the cluster with term bumps when it returns.
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        raft_config.validate().context("invalid raft configuration")?;
        let node = RawNode::new(&raft_config, storage.clone(), &super::logger::raft_logger(id))
            .context("starting the raft node")?;
        let mut driver = Driver {
            node,
            storage,
            metadata,
            rx,
            transport,
            status,
            config,
            boot_nonce: rand::random(),
            next_seq: 1,
            pending: HashMap::new(),
            reads: ReadRounds::default(),
            term_start_index: u64::MAX,
            last_snapshot_index: applied,
            quorum_contact,
            members,
            contact,
        };
        driver.sync_members();
        Ok(driver)
    }

    /// Runs until shutdown or a storage failure (returned as an error).
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.tick_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_status();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {
                    self.node.tick();
                    self.expire_requests();
                    self.probe_quorum_contact();
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle(msg);
                    for _ in 0..MAX_MSGS_PER_TURN {
                        match self.rx.try_recv() {
                            Ok(msg) => self.handle(msg),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.start_read_round();
            self.on_ready()?;
            self.maybe_snapshot()?;
            if self.storage.take_snapshot_request() {
                self.take_snapshot(self.config.snapshot_keep_entries)?;
            }
            self.publish_status();
        }
        self.fail_all(ProposeError::Shutdown);
        Ok(())
    }

    fn handle(&mut self, msg: DriverMsg) {
        match msg {
            DriverMsg::Propose { command, reply } => self.propose(command, reply),
            DriverMsg::ReadIndex { reply } => self.read_index(reply),
            DriverMsg::Step(m) => {
                self.contact.heard(m.from);
                trace_message(&m, "stepped");
                // Errors here are messages from unknown peers or stale terms:
                // raft ignores them by design.
                if let Err(e) = self.node.step(*m) {
                    debug!(error = %e, "raft step ignored a message");
                }
            }
            DriverMsg::Unreachable(peer) => self.node.report_unreachable(peer),
            DriverMsg::SnapshotDone { to, ok } => {
                let status = if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                self.node.report_snapshot(to, status);
            }
            DriverMsg::ChangeConf { change, reply } => self.propose_conf_change(change, reply),
            DriverMsg::TransferLeader { to } => self.node.transfer_leader(to),
        }
    }

    fn not_leader(&self) -> ProposeError {
        ProposeError::NotLeader { leader: Some(self.node.raft.leader_id).filter(|id| *id != 0) }
    }

    /// Proposes one membership change. raft-rs would silently turn a second
    /// pending change into an empty entry (leaving the caller waiting), so a
    /// change is refused up front while another is unapplied or the
    /// configuration is still joint.
    fn propose_conf_change(&mut self, change: ConfChangeV2, reply: oneshot::Sender<Result<Proposed, ProposeError>>) {
        if self.node.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let joint = !self.node.raft.prs().conf().to_conf_state().voters_outgoing.is_empty();
        if self.node.raft.has_pending_conf() || joint {
            let busy = "another membership change is still being applied; retry when it is done";
            let _ = reply.send(Err(ProposeError::Dropped(busy.to_owned())));
            return;
        }
        self.track(reply, |node, context| node.propose_conf_change(context, change));
    }

    fn propose(&mut self, command: Vec<u8>, reply: oneshot::Sender<Result<Proposed, ProposeError>>) {
        if self.node.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        self.track(reply, |node, context| node.propose(context, command));
    }

    /// Proposes through `propose` with a context naming this process and a
    /// fresh sequence number; the reply waits in `pending` until the entry
    /// is applied (or leadership changes).
    fn track(
        &mut self,
        reply: oneshot::Sender<Result<Proposed, ProposeError>>,
        propose: impl FnOnce(&mut RawNode<RaftStorage>, Vec<u8>) -> raft::Result<()>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut context = Vec::with_capacity(16);
        context.extend_from_slice(&self.boot_nonce.to_le_bytes());
        context.extend_from_slice(&seq.to_le_bytes());
        match propose(&mut self.node, context) {
            Ok(()) => {
                trace!(target: COMMIT_PATH, index = self.node.raft.raft_log.last_index(), "proposed");
                self.pending.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(ProposeError::Dropped(e.to_string())));
            }
        }
    }

    fn read_index(&mut self, reply: ReadReply) {
        if self.node.raft.leader_id == 0 {
            let _ = reply.send(Err(ProposeError::NotLeader { leader: None }));
            return;
        }
        self.reads.ask(reply);
    }

    /// At the end of a turn: one ReadIndex round for every read taken in it
    /// (`read_rounds`: all of them were asked before the round starts).
    fn start_read_round(&mut self) {
        let seq = self.next_seq;
        // raft-rs drops ReadIndex silently in some states (no leader yet, or a
        // new leader without a committed entry in its term): the deadline
        // turns a lost round into a Timeout instead of a hang.
        let deadline = Instant::now() + Duration::from_millis(self.config.proposal_timeout_ms);
        if self.reads.start(seq, deadline) {
            self.next_seq += 1;
            // Contexts must be unique across the quorum (raft-rs silently
            // drops a duplicate): node id, boot nonce and sequence.
            self.node.read_index(self.read_context(seq));
        }
    }

    /// Starts a ReadIndex round stamped with now: raft-rs answers it once a
    /// quorum acknowledged a heartbeat carrying it at this term. Only after
    /// the term's first entry is applied (raft-rs refuses reads before).
    fn probe_quorum_contact(&mut self) {
        if self.node.raft.state == StateRole::Leader && self.metadata.version() >= self.term_start_index {
            let mut ctx = CONTACT_PROBE.to_vec();
            ctx.extend_from_slice(&mono_us().to_le_bytes());
            self.node.read_index(ctx);
        }
    }

    fn expire_requests(&mut self) {
        let now = Instant::now();
        // Dropping an expired round drops its senders: the waiters see
        // Shutdown unless their own deadline (the same length) fired first.
        self.reads.expire(now);
        self.pending.retain(|_, reply| !reply.is_closed());
    }

    fn fail_all(&mut self, error: ProposeError) {
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        self.reads.fail_all(&error);
    }

    /// One pass of the Ready loop, in raft-rs's documented order.
    fn on_ready(&mut self) -> anyhow::Result<()> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();

        if let Some(ss) = ready.ss() {
            self.on_role_change(ss.raft_state, ss.leader_id);
        }

        // 1. A leader may send its messages before persisting (raft thesis
        //    10.2.1): followers persist before acknowledging. A Ready with
        //    no new entries (typically a leader's commit advance, whose
        //    appends tell the followers the new commit index) sends them
        //    after step 5 instead, so the clients whose entries it applies
        //    are woken before the links (they share the runtime's threads).
        //    Not when it applies a membership change: applying one may
        //    drop a removed peer's link, and the removed peer must still
        //    hear that its removal committed.
        let mut early = ready.take_messages();
        if !ready.entries().is_empty()
            || !ready.snapshot().is_empty()
            || ready.committed_entries().iter().any(|e| e.get_entry_type() != EntryType::EntryNormal)
        {
            self.send_early(std::mem::take(&mut early));
        }

        // 2. Install a snapshot received from the leader.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot())?;
        }

        // 3. Persist new entries and hard state in one transaction BEFORE
        //    anything that depends on them is sent or applied: fsynced,
        //    unless only the commit index changed (etcd's MustSync).
        let hard_state = ready.hs().cloned();
        if !ready.entries().is_empty() || hard_state.is_some() {
            self.storage
                .append_and_persist(ready.entries(), hard_state.as_ref())
                .context("persisting raft entries and hard state")?;
            trace!(target: COMMIT_PATH, last = ready.entries().last().map_or(0, |e| e.index), "persisted");
        }

        // 4. Messages that must follow persistence (votes, append responses).
        let persisted = ready.take_persisted_messages();
        if !persisted.is_empty() {
            trace!(target: COMMIT_PATH, messages = persisted.len(), "sent after persisting");
        }
        self.transport.send(persisted);

        // 5. Apply committed entries (raft-rs only hands out entries that are
        //    both committed and persisted locally).
        self.apply_entries(ready.take_committed_entries())?;
        self.send_early(early);

        // 6. Answer ReadIndex requests: the reader waits for applied >= index.
        for rs in ready.take_read_states() {
            if let Some(stamp) = rs.request_ctx.strip_prefix(CONTACT_PROBE.as_slice())
                && let Ok(stamp) = <[u8; 8]>::try_from(stamp)
            {
                self.quorum_contact.confirm(u64::from_le_bytes(stamp));
                continue;
            }
            if let Some(seq) = self.own_read(&rs.request_ctx) {
                self.reads.answer(seq, rs.index);
            }
        }

        // 7. Advance, then the LightReady: commit index, messages, entries.
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit).context("persisting the commit index")?;
        }
        self.transport.send(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.node.advance_apply();
        Ok(())
    }

    /// Step 1's messages (none when they were sent already).
    fn send_early(&mut self, messages: Vec<Message>) {
        if !messages.is_empty() {
            trace!(target: COMMIT_PATH, messages = messages.len(), "sent before persisting");
        }
        self.transport.send(messages);
    }

    fn on_role_change(&mut self, role: StateRole, leader_id: u64) {
        info!(role = ?role, leader_id, term = self.node.raft.term, "raft role changed");
        if role == StateRole::Leader {
            // become_leader appended an empty entry: once it is applied, our
            // state includes everything earlier leaders committed.
            self.term_start_index = self.node.raft.raft_log.last_index();
        } else {
            self.term_start_index = u64::MAX;
            self.quorum_contact.clear();
            if !self.pending.is_empty() || !self.reads.is_empty() {
                warn!(proposals = self.pending.len(), "lost leadership with requests in flight");
            }
            self.fail_all(ProposeError::Ambiguous);
        }
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let index = snapshot.get_metadata().index;
        let state = State::decode_snapshot(snapshot.get_data())
            .map_err(|e| anyhow::anyhow!("decoding the snapshot received at index {index}: {e}"))?;
        self.storage.apply_snapshot(snapshot).context("installing a snapshot from the leader")?;
        info!(index, bytes = snapshot.get_data().len(), "installed snapshot from the leader");
        self.metadata.restore(state);
        self.last_snapshot_index = index;
        self.sync_members();
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        for entry in entries {
            let index = entry.index;
            if index <= self.metadata.version() {
                continue; // already in the restored snapshot
            }
            // A controller that joined with an empty log must get its first
            // state (and configuration) from a snapshot; replaying from
            // index 1 would build a configuration without the bootstrap voters.
            anyhow::ensure!(
                !self.node.raft.prs().conf().voters().ids().is_empty(),
                "asked to apply entry {index} with no raft configuration: a joining controller must start \
                 from a snapshot (was the quorum member added with `batonctl quorum add`?)"
            );
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&entry),
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&entry.data).context("decoding a conf change")?;
                    let before = self.member_ids();
                    let cs = self.node.apply_conf_change(&cc).context("applying a conf change")?;
                    self.on_conf_state(&entry, &cc.context, cs, &before)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&entry.data).context("decoding a conf change")?;
                    let before = self.member_ids();
                    let cs = self.node.apply_conf_change(&cc).context("applying a conf change")?;
                    self.on_conf_state(&entry, &cc.context, cs, &before)?;
                }
            }
        }
        Ok(())
    }

    fn apply_normal(&mut self, entry: &Entry) {
        if entry.data.is_empty() {
            self.metadata.apply_empty(entry.index);
            return;
        }
        let applied = match Command::decode(&entry.data) {
            Ok(command) => self.metadata.apply(entry.index, &command),
            Err(e) => {
                // Every replica decodes the same bytes the same way, so a
                // no-op keeps them identical; this is a bug worth shouting about.
                error!(index = entry.index, error = %e, "committed entry does not decode; applying as a no-op");
                self.metadata.apply_empty(entry.index);
                return;
            }
        };
        trace!(target: COMMIT_PATH, index = entry.index, "applied");
        if let Some(seq) = self.own_proposal(&entry.context)
            && let Some(reply) = self.pending.remove(&seq)
        {
            let _ = reply.send(Ok(Proposed { index: entry.index, outcome: applied }));
        }
    }

    fn read_context(&self, seq: u64) -> Vec<u8> {
        let mut ctx = Vec::with_capacity(24);
        ctx.extend_from_slice(&self.node.raft.id.to_le_bytes());
        ctx.extend_from_slice(&self.boot_nonce.to_le_bytes());
        ctx.extend_from_slice(&seq.to_le_bytes());
        ctx
    }

    fn own_read(&self, ctx: &[u8]) -> Option<u64> {
        let mine = self.read_context(0);
        (ctx.len() == 24 && ctx[..16] == mine[..16])
            .then(|| u64::from_le_bytes(ctx[16..].try_into().unwrap_or_default()))
    }

    fn own_proposal(&self, context: &[u8]) -> Option<u64> {
        let (nonce, seq) = context.split_at_checked(8)?;
        let nonce = u64::from_le_bytes(nonce.try_into().ok()?);
        let seq = u64::from_le_bytes(seq.try_into().ok()?);
        (nonce == self.boot_nonce).then_some(seq)
    }

    /// Voters (incoming and outgoing) and learners of the current configuration.
    fn member_ids(&self) -> BTreeSet<u64> {
        let cs = self.node.raft.prs().conf().to_conf_state();
        [cs.voters, cs.voters_outgoing, cs.learners, cs.learners_next].into_iter().flatten().collect()
    }

    /// After raft applied a configuration change: persist it, apply the
    /// controllers' addresses it carries, answer its proposer, and connect
    /// to (or disconnect from) the members it added or removed.
    ///
    /// A change that adds a member is followed by a snapshot at its index
    /// and a compaction of the whole log behind it, on every controller:
    /// the new member starts with an empty log and must receive a snapshot
    /// whose configuration includes it (raft-rs refuses any other), never
    /// the log from index 1, which predates the bootstrap configuration.
    fn on_conf_state(
        &mut self,
        entry: &Entry,
        context: &[u8],
        cs: ConfState,
        before: &BTreeSet<u64>,
    ) -> anyhow::Result<()> {
        let index = entry.index;
        self.storage.set_conf_state(&cs).context("persisting the conf state")?;
        info!(
            index,
            voters = ?cs.voters, voters_outgoing = ?cs.voters_outgoing, learners = ?cs.learners,
            "configuration changed"
        );
        let outcome = if context.is_empty() {
            self.metadata.apply_empty(index);
            Ok(baton_state_machine::Outcome::Noop)
        } else {
            match Command::decode(context) {
                Ok(command @ Command::ControllerAddresses { .. }) => self.metadata.apply(index, &command),
                other => {
                    error!(index, decoded = ?other, "a configuration change carries an unexpected context; ignored");
                    self.metadata.apply_empty(index);
                    Ok(baton_state_machine::Outcome::Noop)
                }
            }
        };
        if !self.member_ids().is_subset(before) {
            self.take_snapshot(0).context("snapshot for a new member")?;
        }
        trace!(target: COMMIT_PATH, index = entry.index, "applied");
        if let Some(seq) = self.own_proposal(&entry.context)
            && let Some(reply) = self.pending.remove(&seq)
        {
            let _ = reply.send(Ok(Proposed { index, outcome }));
        }
        let me = self.node.raft.id;
        if ![&cs.voters, &cs.voters_outgoing, &cs.learners, &cs.learners_next].iter().any(|ids| ids.contains(&me)) {
            warn!(index, "this controller was removed from the quorum: it no longer votes or leads; stop it");
        }
        self.sync_members();
        Ok(())
    }

    /// Links to exactly the members of the current configuration, at the
    /// addresses known now. A joining controller (no configuration yet)
    /// links to every configured peer, so it can answer the leader.
    fn sync_members(&mut self) {
        let recorded = self.metadata.read(|s| s.controller_addresses().clone());
        let addresses = self.members.refresh(&recorded);
        let mut ids = self.member_ids();
        if ids.is_empty() {
            ids = addresses.keys().copied().collect();
        }
        self.transport.set_members(&ids, &addresses);
    }

    /// Every `snapshot_interval_entries` applied entries, store a snapshot of
    /// the state machine and compact the log behind it.
    fn maybe_snapshot(&mut self) -> anyhow::Result<()> {
        let applied = self.metadata.version();
        if applied < self.last_snapshot_index + self.config.snapshot_interval_entries {
            return Ok(());
        }
        self.take_snapshot(self.config.snapshot_keep_entries)
    }

    /// Stores a snapshot at the applied index and compacts the log behind
    /// it, keeping `keep_entries` entries for followers that lag a little.
    fn take_snapshot(&mut self, keep_entries: u64) -> anyhow::Result<()> {
        let applied = self.metadata.version();
        let started = std::time::Instant::now();
        let data = self.metadata.read(|s| s.encode_snapshot());
        let bytes = data.len();
        let conf_state = self.node.raft.prs().conf().to_conf_state();
        self.storage
            .save_snapshot(applied, &conf_state, data, keep_entries)
            .context("saving a state-machine snapshot")?;
        self.last_snapshot_index = applied;
        info!(index = applied, bytes, took_ms = started.elapsed().as_millis() as u64, "snapshot saved; log compacted");
        Ok(())
    }

    fn publish_status(&mut self) {
        let raft = &self.node.raft;
        let applied = self.metadata.version();
        let is_leader = raft.state == StateRole::Leader;
        let conf = raft.prs().conf().to_conf_state();
        let match_index =
            if is_leader { raft.prs().iter().map(|(id, pr)| (*id, pr.matched)).collect() } else { Default::default() };
        let status = RaftStatus {
            id: raft.id,
            leader_id: raft.leader_id,
            term: raft.term,
            is_leader,
            leader_ready: is_leader && applied >= self.term_start_index,
            commit_index: raft.raft_log.committed,
            applied_index: applied,
            voters: conf.voters.clone(),
            voters_outgoing: conf.voters_outgoing.clone(),
            learners: conf.learners.clone(),
            match_index,
        };
        self.status.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                *s = status;
                true
            }
        });
    }
}

/// A TRACE event for an append or its response (see [`COMMIT_PATH`]): the
/// last index it carries or acknowledges.
pub(crate) fn trace_message(m: &raft::prelude::Message, what: &'static str) {
    use raft::prelude::MessageType;
    if !tracing::enabled!(target: COMMIT_PATH, tracing::Level::TRACE) {
        return;
    }
    match m.get_msg_type() {
        MessageType::MsgAppend => {
            let index = m.entries.last().map_or(m.index, |e| e.index);
            trace!(target: COMMIT_PATH, from = m.from, to = m.to, index, commit = m.commit, "append {what}");
        }
        MessageType::MsgAppendResponse => {
            trace!(target: COMMIT_PATH, from = m.from, to = m.to, index = m.index, "append response {what}");
        }
        _ => {}
    }
}

/// The initial state machine for a node: its latest snapshot, or empty.
pub(crate) fn restore_state(storage: &RaftStorage) -> anyhow::Result<State> {
    match storage.latest_snapshot().context("reading the latest snapshot")? {
        Some(snapshot) => State::decode_snapshot(snapshot.get_data())
            .map_err(|e| anyhow::anyhow!("decoding the stored snapshot: {e}")),
        None => Ok(State::new()),
    }
}
