//! Unit and property tests of the state machine. Each test's name and first
//! comment say which rule or property it proves.

mod brokers;
mod codec;
mod elections;
mod isr;
mod property;
mod reassign;
mod scale;
mod topics;

use crate::{Applied, Broker, BrokerId, Command, FenceReason, Partition, State, StateError, Topic, TopicConfig};

/// A state plus the next log index, checking every invariant after each apply.
pub(super) struct Harness {
    pub state: State,
    pub index: u64,
}

impl Harness {
    pub fn new() -> Harness {
        Harness { state: State::new(), index: 0 }
    }

    pub fn apply(&mut self, command: Command) -> Applied {
        self.index += 1;
        let applied = self.state.apply(self.index, &command);
        assert_eq!(self.state.applied_index(), self.index);
        if let Err(broken) = self.state.check_invariants() {
            panic!("invariant broken after {command:?}: {broken}");
        }
        applied
    }

    /// Applies a command that must be refused with `expected`, and proves it
    /// changed nothing but the applied index.
    pub fn refused(&mut self, command: Command, expected: StateError) {
        let before = content(&self.state);
        let applied = self.apply(command);
        assert_eq!(applied.outcome, Err(expected));
        assert!(applied.changes.is_empty(), "a refused command reports no changes");
        assert_eq!(content(&self.state), before, "a refused command changes nothing");
    }

    /// Registers a broker with incarnation "inc-<id>"; returns its epoch.
    pub fn register(&mut self, id: BrokerId, rack: &str) -> u64 {
        let applied = self.apply(register(id, &format!("inc-{id}"), rack));
        assert!(applied.outcome.is_ok(), "{:?}", applied.outcome);
        self.index
    }

    pub fn fence(&mut self, id: BrokerId) -> Applied {
        let epoch = self.state.broker(id).map(|b| b.epoch).unwrap_or_default();
        self.apply(Command::FenceBroker { broker_id: id, broker_epoch: epoch, reason: FenceReason::SessionTimeout })
    }

    pub fn create(&mut self, name: &str, partitions: i32, rf: i32) -> Applied {
        self.apply(create(name, partitions, rf, false))
    }

    pub fn partition(&self, topic: &str, p: i32) -> Partition {
        self.state.partition(topic, p).cloned().expect("partition exists")
    }

    /// Hand-placed replicas, for tests that need an exact layout: a topic is
    /// created, then its assignment is overwritten consistently.
    pub fn create_with_replicas(&mut self, name: &str, replicas: Vec<Vec<BrokerId>>, unclean: bool) {
        let n = i32::try_from(replicas.len()).expect("small");
        let applied = self.apply(create(name, n, 1, unclean));
        assert!(applied.outcome.is_ok(), "{:?}", applied.outcome);
        let topic = self.state.topics.get_mut(name).expect("created");
        topic.partitions = replicas.into_iter().map(Partition::new).collect();
        self.state.index = crate::index::DerivedIndex::rebuild(self.state.topics.values());
        self.state.check_invariants().expect("hand-placed layout is valid");
    }
}

pub(super) fn register(id: BrokerId, incarnation: &str, rack: &str) -> Command {
    Command::RegisterBroker {
        broker_id: id,
        incarnation_id: incarnation.to_owned(),
        endpoint: format!("10.0.0.{id}:9092"),
        rack: rack.to_owned(),
    }
}

pub(super) fn create(name: &str, partitions: i32, rf: i32, unclean: bool) -> Command {
    Command::CreateTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: rf,
        config: TopicConfig { unclean_leader_election: unclean },
    }
}

/// Everything but the applied index.
pub(super) fn content(state: &State) -> (Vec<Broker>, Vec<Topic>) {
    (state.brokers().cloned().collect(), state.topics().cloned().collect())
}

/// A harness with brokers 1..=n, no racks.
pub(super) fn cluster(n: BrokerId) -> Harness {
    let mut h = Harness::new();
    for id in 1..=n {
        h.register(id, "");
    }
    h
}
