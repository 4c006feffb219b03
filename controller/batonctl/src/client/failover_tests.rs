//! The failover loop against real gRPC servers on port 0: a follower that
//! refuses with a leader hint, a leader that answers, and dead addresses.

use std::net::SocketAddr;

use baton_proto::v1::controller_server::{Controller, ControllerServer};
use baton_proto::v1::*;
use tonic::codegen::{BoxStream, async_trait};
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::*;

/// What a fake controller does with DescribeTopic.
#[derive(Clone)]
enum Behaviour {
    /// Refuse as a follower, naming `hint` as the leader (raw metadata value).
    Follower { hint: Option<String> },
    /// Answer: a topic named "t" exists, nothing else does.
    Leader,
}

struct FakeController {
    behaviour: Behaviour,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this fake"))
}

#[async_trait]
impl Controller for FakeController {
    async fn create_topic(&self, _: Request<CreateTopicRequest>) -> Result<Response<CreateTopicResponse>, Status> {
        unimplemented()
    }
    async fn delete_topic(&self, _: Request<DeleteTopicRequest>) -> Result<Response<DeleteTopicResponse>, Status> {
        unimplemented()
    }
    async fn list_topics(&self, _: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        unimplemented()
    }
    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        match &self.behaviour {
            Behaviour::Follower { hint } => {
                let mut status = Status::unavailable("not the controller leader");
                let md = status.metadata_mut();
                md.insert(ERROR_METADATA_KEY, MetadataValue::from_static("NOT_CONTROLLER_LEADER"));
                if let Some(v) = hint.as_deref().and_then(|h| h.parse().ok()) {
                    md.insert(LEADER_METADATA_KEY, v);
                }
                Err(status)
            }
            Behaviour::Leader if request.get_ref().name == "t" => Ok(Response::new(DescribeTopicResponse {
                topic: Some(TopicDescription { name: "t".to_owned(), topic_id: 1, config: None, partitions: vec![] }),
                metadata_version: 7,
            })),
            Behaviour::Leader => {
                let mut status = Status::not_found("no such topic");
                status.metadata_mut().insert(ERROR_METADATA_KEY, MetadataValue::from_static("TOPIC_NOT_FOUND"));
                Err(status)
            }
        }
    }
    async fn get_partition_leader(
        &self,
        _: Request<GetPartitionLeaderRequest>,
    ) -> Result<Response<GetPartitionLeaderResponse>, Status> {
        unimplemented()
    }
    type WatchLeadershipStream = BoxStream<LeadershipUpdate>;
    async fn watch_leadership(
        &self,
        _: Request<WatchLeadershipRequest>,
    ) -> Result<Response<Self::WatchLeadershipStream>, Status> {
        unimplemented()
    }
    async fn elect_leaders(&self, _: Request<ElectLeadersRequest>) -> Result<Response<ElectLeadersResponse>, Status> {
        unimplemented()
    }
    async fn list_brokers(&self, _: Request<ListBrokersRequest>) -> Result<Response<ListBrokersResponse>, Status> {
        unimplemented()
    }
    async fn describe_quorum(
        &self,
        _: Request<DescribeQuorumRequest>,
    ) -> Result<Response<DescribeQuorumResponse>, Status> {
        unimplemented()
    }
    async fn drain_broker(
        &self,
        _: Request<baton_proto::v1::DrainBrokerRequest>,
    ) -> Result<Response<baton_proto::v1::DrainBrokerResponse>, Status> {
        unimplemented()
    }
    async fn undrain_broker(
        &self,
        _: Request<baton_proto::v1::UndrainBrokerRequest>,
    ) -> Result<Response<baton_proto::v1::UndrainBrokerResponse>, Status> {
        unimplemented()
    }
    async fn alter_partition_reassignments(
        &self,
        _: Request<baton_proto::v1::AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<baton_proto::v1::AlterPartitionReassignmentsResponse>, Status> {
        unimplemented()
    }
    async fn list_partition_reassignments(
        &self,
        _: Request<baton_proto::v1::ListPartitionReassignmentsRequest>,
    ) -> Result<Response<baton_proto::v1::ListPartitionReassignmentsResponse>, Status> {
        unimplemented()
    }
    async fn add_controller(
        &self,
        _: Request<baton_proto::v1::AddControllerRequest>,
    ) -> Result<Response<baton_proto::v1::AddControllerResponse>, Status> {
        unimplemented()
    }
    async fn remove_controller(
        &self,
        _: Request<baton_proto::v1::RemoveControllerRequest>,
    ) -> Result<Response<baton_proto::v1::RemoveControllerResponse>, Status> {
        unimplemented()
    }
}

async fn spawn(behaviour: Behaviour) -> SocketAddr {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local_addr: {e}"),
    };
    let service = ControllerServer::new(FakeController { behaviour });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    addr
}

/// An address nothing listens on (bound, then released).
async fn dead_addr() -> String {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => panic!("local_addr: {e}"),
    }
}

async fn describe(controllers: Vec<String>, name: &str) -> Result<DescribeTopicResponse, ClientError> {
    let c = Controllers::new(controllers, Duration::from_secs(2));
    let req = DescribeTopicRequest { name: name.to_owned(), consistency: 0 };
    c.call(|mut client| {
        let req = c.unary(req.clone());
        async move { client.describe_topic(req).await }
    })
    .await
    .map_err(|e| e.about(Subject::topic(name)))
}

#[tokio::test]
async fn follows_the_leader_hint_to_a_controller_not_in_the_list() {
    let leader = spawn(Behaviour::Leader).await;
    let follower = spawn(Behaviour::Follower { hint: Some(format!("2={leader}")) }).await;
    let resp = describe(vec![dead_addr().await, follower.to_string()], "t").await;
    match resp {
        Ok(r) => assert_eq!(r.metadata_version, 7),
        Err(e) => panic!("expected an answer via the hint, got {e}"),
    }
}

#[tokio::test]
async fn typed_error_from_the_leader_is_final_and_worded() {
    let leader = spawn(Behaviour::Leader).await;
    let follower = spawn(Behaviour::Follower { hint: Some(format!("2={leader}")) }).await;
    match describe(vec![follower.to_string(), leader.to_string()], "x").await {
        Err(e @ ClientError::Rpc(_)) => {
            assert_eq!(e.to_string(), "topic \"x\" not found (TOPIC_NOT_FOUND)")
        }
        other => panic!("expected TOPIC_NOT_FOUND, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_leader_every_controller_is_tried_then_reported() {
    let f1 = spawn(Behaviour::Follower { hint: None }).await.to_string();
    let f2 = spawn(Behaviour::Follower { hint: Some("garbage".to_owned()) }).await.to_string();
    let dead = dead_addr().await;
    match describe(vec![dead.clone(), f1.clone(), f2.clone()], "t").await {
        Err(e @ ClientError::NoController { .. }) => {
            let text = e.to_string();
            let want = format!("no controller reachable (tried {dead}, {f1}, {f2}): {f2}: ");
            assert!(text.starts_with(&want), "{text}");
            assert!(text.ends_with("(NOT_CONTROLLER_LEADER)"), "{text}");
        }
        other => panic!("expected NoController, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hint_pointing_at_a_dead_leader_is_taken_once() {
    let dead = dead_addr().await;
    let f1 = spawn(Behaviour::Follower { hint: Some(format!("3={dead}")) }).await.to_string();
    let f2 = spawn(Behaviour::Follower { hint: Some(format!("3={dead}")) }).await.to_string();
    match describe(vec![f1.clone(), f2.clone()], "t").await {
        Err(ClientError::NoController { tried, .. }) => assert_eq!(tried, vec![f1, dead, f2]),
        other => panic!("expected NoController, got {other:?}"),
    }
}
