//! The public `baton.v1.Controller` service.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use baton_proto::v1 as pb;
use baton_proto::v1::controller_server::Controller;
use baton_state_machine::{
    Command, ElectionType, Outcome, ReassignmentChange, ReassignmentResult, State, StateError, TopicConfig,
};
use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{self, UpdateCursor};
use super::forward::Route;
use super::quorum;
use super::{invalid, propose_error, state_error, state_error_code};
use crate::Shared;

pub struct ControllerService {
    shared: Arc<Shared>,
}

impl ControllerService {
    pub fn new(shared: Arc<Shared>) -> ControllerService {
        ControllerService { shared }
    }

    /// Proposes a command on the leader and returns its outcome and version.
    async fn commit(&self, command: Command) -> Result<(Outcome, u64), Status> {
        let handle = &self.shared.raft;
        let proposed = self.shared.propose(&command).await.map_err(|e| propose_error(e, handle))?;
        match proposed.outcome {
            Ok(outcome) => Ok((outcome, proposed.index)),
            Err(e) => Err(state_error(&e)),
        }
    }

    /// Reads at the requested consistency; returns the state's version too.
    async fn read<R>(&self, consistency: i32, f: impl FnOnce(&State) -> R) -> Result<R, Status> {
        if consistency == pb::ReadConsistency::Linearizable as i32 {
            let handle = &self.shared.raft;
            handle.read_barrier().await.map_err(|e| propose_error(e, handle))?;
        }
        Ok(self.shared.raft.metadata().read(f))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::LeadershipUpdate, Status>> + Send>>;

/// A forwarded AddController may wait for a learner to catch up.
const MEMBERSHIP_FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Bound on updates queued for one watcher.
const WATCH_QUEUE: usize = 64;

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller(&addr, inner, |mut c, r| async move { c.create_topic(r).await })
                .await;
        }
        let req = request.into_inner();
        let config =
            TopicConfig { unclean_leader_election: req.config.as_ref().is_some_and(|c| c.unclean_leader_election) };
        let command = Command::CreateTopic {
            name: req.name.clone(),
            partitions: req.partitions,
            replication_factor: req.replication_factor,
            config,
        };
        let (_, version) = self.commit(command).await?;
        let topic = self.shared.raft.metadata().read(|s| s.topic(&req.name).map(|t| convert::topic_description(s, t)));
        // A delete racing in right after the create can leave nothing to show.
        let topic = topic.ok_or_else(|| state_error(&StateError::TopicNotFound(req.name.clone())))?;
        Ok(Response::new(pb::CreateTopicResponse { topic: Some(topic), metadata_version: version }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller(&addr, inner, |mut c, r| async move { c.delete_topic(r).await })
                .await;
        }
        let name = request.into_inner().name;
        let (_, version) = self.commit(Command::DeleteTopic { name }).await?;
        Ok(Response::new(pb::DeleteTopicResponse { metadata_version: version }))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let req = request.into_inner();
        let response = self
            .read(req.consistency, |s| pb::ListTopicsResponse {
                topics: s
                    .topics()
                    .map(|t| pb::TopicSummary {
                        name: t.name.to_string(),
                        topic_id: t.id,
                        partitions: t.partitions.len() as i32,
                        replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i32),
                    })
                    .collect(),
                metadata_version: s.applied_index(),
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let req = request.into_inner();
        let response = self
            .read(req.consistency, |s| {
                s.topic(&req.name)
                    .map(|t| pb::DescribeTopicResponse {
                        topic: Some(convert::topic_description(s, t)),
                        metadata_version: s.applied_index(),
                    })
                    .ok_or_else(|| state_error(&StateError::TopicNotFound(req.name.clone())))
            })
            .await??;
        Ok(Response::new(response))
    }

    async fn get_partition_leader(
        &self,
        request: Request<pb::GetPartitionLeaderRequest>,
    ) -> Result<Response<pb::GetPartitionLeaderResponse>, Status> {
        let req = request.into_inner();
        let response = self
            .read(req.consistency, |s| {
                let p = s.partition(&req.topic, req.partition).map_err(|e| state_error(&e))?;
                Ok::<_, Status>(pb::GetPartitionLeaderResponse {
                    topic: req.topic.clone(),
                    partition: req.partition,
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    endpoint: convert::leader_endpoint(s, p.leader),
                    metadata_version: s.applied_index(),
                })
            })
            .await??;
        Ok(Response::new(response))
    }

    type WatchLeadershipStream = WatchStream;

    async fn watch_leadership(
        &self,
        request: Request<pb::WatchLeadershipRequest>,
    ) -> Result<Response<Self::WatchLeadershipStream>, Status> {
        let from = request.into_inner().from_version;
        let shared = self.shared.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_QUEUE);
        tokio::spawn(async move {
            let metadata = shared.raft.metadata().clone();
            let mut cursor = UpdateCursor::new(&metadata, from, convert::Scope::All);
            while let Some(update) = tokio::select! {
                u = cursor.next(&metadata) => u,
                _ = tx.closed() => None,
            } {
                // Watchers get each update as one message, as they always have.
                if tx.send(Ok(update.into_whole())).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn elect_leaders(
        &self,
        request: Request<pb::ElectLeadersRequest>,
    ) -> Result<Response<pb::ElectLeadersResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller(&addr, inner, |mut c, r| async move { c.elect_leaders(r).await })
                .await;
        }
        let req = request.into_inner();
        let election = match pb::ElectionType::try_from(req.election_type) {
            Ok(pb::ElectionType::Preferred) => ElectionType::Preferred,
            Ok(pb::ElectionType::Unclean) => ElectionType::Unclean,
            Err(_) => return Err(invalid(format!("unknown election type {}", req.election_type))),
        };
        let partitions = (!req.partitions.is_empty())
            .then(|| req.partitions.into_iter().map(|tp| (tp.topic, tp.partition)).collect());
        let (outcome, version) = self.commit(Command::ElectLeaders { election, partitions }).await?;
        let Outcome::LeadersElected(results) = outcome else {
            return Err(Status::internal("unexpected outcome for an election"));
        };
        let results = results
            .into_iter()
            .map(|r| match r.result {
                Ok((leader, leader_epoch)) => pb::ElectionResult {
                    topic: r.topic,
                    partition: r.partition,
                    error: pb::ErrorCode::Unspecified as i32,
                    message: String::new(),
                    leader,
                    leader_epoch,
                },
                Err(e) => pb::ElectionResult {
                    topic: r.topic,
                    partition: r.partition,
                    error: state_error_code(&e) as i32,
                    message: e.to_string(),
                    leader: -1,
                    leader_epoch: -1,
                },
            })
            .collect();
        Ok(Response::new(pb::ElectLeadersResponse { results, metadata_version: version }))
    }

    async fn list_brokers(
        &self,
        _request: Request<pb::ListBrokersRequest>,
    ) -> Result<Response<pb::ListBrokersResponse>, Status> {
        let now = Instant::now();
        let liveness = &self.shared.liveness;
        let response = self.shared.raft.metadata().read(|s| pb::ListBrokersResponse {
            brokers: s
                .brokers()
                .map(|b| {
                    let age = liveness.heartbeat_age(b.id, now).map_or(-1, |d| d.as_millis() as i64);
                    convert::broker_info(b, age)
                })
                .collect(),
            metadata_version: s.applied_index(),
        });
        Ok(Response::new(response))
    }

    async fn describe_quorum(
        &self,
        _request: Request<pb::DescribeQuorumRequest>,
    ) -> Result<Response<pb::DescribeQuorumResponse>, Status> {
        Ok(Response::new(quorum::describe(&self.shared.raft)))
    }

    async fn drain_broker(
        &self,
        request: Request<pb::DrainBrokerRequest>,
    ) -> Result<Response<pb::DrainBrokerResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller(&addr, inner, |mut c, r| async move { c.drain_broker(r).await })
                .await;
        }
        let req = request.into_inner();
        let (outcome, version) =
            self.commit(Command::DrainBroker { broker_id: req.broker_id, force: req.force }).await?;
        let Outcome::LeadershipDrained { moved, remaining } = outcome else {
            return Err(Status::internal("unexpected outcome for a drain"));
        };
        tracing::info!(broker = req.broker_id, moved, remaining, "broker drained");
        Ok(Response::new(pb::DrainBrokerResponse {
            moved: moved as i32,
            remaining: remaining as i32,
            metadata_version: version,
        }))
    }

    async fn undrain_broker(
        &self,
        request: Request<pb::UndrainBrokerRequest>,
    ) -> Result<Response<pb::UndrainBrokerResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller(&addr, inner, |mut c, r| async move { c.undrain_broker(r).await })
                .await;
        }
        let req = request.into_inner();
        let (outcome, version) = self.commit(Command::UndrainBroker { broker_id: req.broker_id }).await?;
        let Outcome::BrokerUndrained { elected } = outcome else {
            return Err(Status::internal("unexpected outcome for an undrain"));
        };
        tracing::info!(broker = req.broker_id, elected, "broker undrained");
        Ok(Response::new(pb::UndrainBrokerResponse { elected: elected as i32, metadata_version: version }))
    }

    async fn alter_partition_reassignments(
        &self,
        request: Request<pb::AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<pb::AlterPartitionReassignmentsResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller(&addr, inner, |mut c, r| async move { c.alter_partition_reassignments(r).await })
                .await;
        }
        let req = request.into_inner();
        if req.reassignments.is_empty() {
            return Err(invalid("no reassignments given"));
        }
        let changes: Vec<ReassignmentChange> = req
            .reassignments
            .into_iter()
            .map(|r| ReassignmentChange {
                topic: r.topic,
                partition: r.partition,
                target: (!r.cancel).then_some(r.target_replicas),
            })
            .collect();
        let targets: Vec<i32> = changes.iter().filter_map(|c| c.target.clone()).flatten().collect();
        let (outcome, version) = self.commit(Command::AlterReassignments { changes }).await?;
        let Outcome::ReassignmentsAltered(outcomes) = outcome else {
            return Err(Status::internal("unexpected outcome for a reassignment"));
        };
        // New replicas join ISRs through the usual catch-up rule.
        self.shared.liveness.consider_for_isr(targets);
        let results = outcomes
            .into_iter()
            .map(|o| {
                let (error, message, state) = match o.result {
                    Ok(r) => {
                        let state = match r {
                            ReassignmentResult::Started => "STARTED",
                            ReassignmentResult::Completed => "COMPLETED",
                            ReassignmentResult::Cancelled => "CANCELLED",
                        };
                        (pb::ErrorCode::Unspecified, String::new(), state.to_owned())
                    }
                    Err(e) => (state_error_code(&e), e.to_string(), String::new()),
                };
                pb::ReassignmentResult { topic: o.topic, partition: o.partition, error: error as i32, message, state }
            })
            .collect();
        Ok(Response::new(pb::AlterPartitionReassignmentsResponse { results, metadata_version: version }))
    }

    async fn list_partition_reassignments(
        &self,
        request: Request<pb::ListPartitionReassignmentsRequest>,
    ) -> Result<Response<pb::ListPartitionReassignmentsResponse>, Status> {
        let req = request.into_inner();
        let response = self
            .read(req.consistency, |s| pb::ListPartitionReassignmentsResponse {
                reassignments: s
                    .reassignments()
                    .iter()
                    .filter_map(|((topic_id, p), r)| {
                        let topic = s.topic_by_id(*topic_id)?;
                        let part = topic.partitions.get(usize::try_from(*p).ok()?)?;
                        Some(pb::OngoingReassignment {
                            topic: topic.name.to_string(),
                            partition: *p,
                            replicas: part.replicas.clone(),
                            isr: part.isr.clone(),
                            target_replicas: r.target.clone(),
                            adding: r.adding(part).collect(),
                            removing: r.removing().collect(),
                        })
                    })
                    .collect(),
                metadata_version: s.applied_index(),
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn add_controller(
        &self,
        request: Request<pb::AddControllerRequest>,
    ) -> Result<Response<pb::AddControllerResponse>, Status> {
        if let Route::Leader(addr) = self.shared.forwarder.route(&self.shared.raft, &request)? {
            let inner = request.into_inner();
            return self
                .shared
                .forwarder
                .controller_with_timeout(&addr, inner, MEMBERSHIP_FORWARD_TIMEOUT, |mut c, r| async move {
                    c.add_controller(r).await
                })
                .await;
        }
        Ok(Response::new(quorum::add(&self.shared, request.into_inner()).await?))
    }

    async fn remove_controller(
        &self,
        request: Request<pb::RemoveControllerRequest>,
    ) -> Result<Response<pb::RemoveControllerResponse>, Status> {
        let route = self.shared.forwarder.route(&self.shared.raft, &request)?;
        let req = request.into_inner();
        let addr = match route {
            Route::Leader(addr) => addr,
            Route::Local => match quorum::remove(&self.shared, &req).await? {
                quorum::Removal::Done(response) => return Ok(Response::new(response)),
                quorum::Removal::Forward(addr) => addr,
            },
        };
        self.shared
            .forwarder
            .controller_with_timeout(&addr, req, MEMBERSHIP_FORWARD_TIMEOUT, |mut c, r| async move {
                c.remove_controller(r).await
            })
            .await
    }
}
