//! The public `Controller` API as the fault runner uses it: every call tries
//! the controllers in turn (real addresses: client traffic is not faulted),
//! each attempt bounded by a timeout, and answers the first definite result.

use std::time::Duration;

use futures::future::BoxFuture;

use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::v1::{
    CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DescribeQuorumRequest, DescribeTopicRequest,
    DescribeTopicResponse, ListBrokersRequest, ListBrokersResponse, ListTopicsRequest, ListTopicsResponse,
    ReadConsistency, TopicConfig,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Bound on one attempt at one controller.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Api {
    addrs: Vec<String>,
}

/// One attempt of a call on a connected client.
pub type Call<T> = Box<dyn FnMut(ControllerClient<Channel>) -> BoxFuture<'static, Result<T, Status>> + Send>;

/// A write's outcome: done, refused for good, or unknown (it may still commit).
#[derive(Debug)]
pub enum WriteOutcome<T> {
    Done(T),
    Refused(Status),
    Ambiguous(Status),
}

/// Statuses after which the request certainly did not change anything.
fn definite(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::NotFound
            | Code::AlreadyExists
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::PermissionDenied
    )
}

impl Api {
    pub fn new(addrs: Vec<String>) -> Api {
        Api { addrs }
    }

    async fn connect(addr: &str) -> Result<ControllerClient<Channel>, Status> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(ATTEMPT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("connect {addr}: {e}")))?;
        Ok(ControllerClient::new(channel))
    }

    /// One round over the controllers: the first answer that is Ok or
    /// definite wins; otherwise the last error.
    ///
    /// For a write, a definite refusal that follows an attempt which may
    /// have reached a controller (it timed out, or failed after connecting)
    /// is not definite: that attempt may have committed the change, and the
    /// retry then meets its effect (a delete NotFound, a create
    /// AlreadyExists). It is returned as `Unknown`, so the write is
    /// ambiguous and gets resolved, instead of refused. (Found by soak seed
    /// 3007: a delete committed under a stalled fsync, its answer came after
    /// the attempt's timeout, the retry got NotFound, and the checker
    /// reported the topic's acknowledged create as lost.)
    async fn round<T>(&self, f: &mut Call<T>, write: bool) -> Result<T, Status> {
        let mut last = Status::unavailable("no controller configured");
        let mut maybe_applied = false;
        for addr in &self.addrs {
            let client = match Self::connect(addr).await {
                Ok(c) => c,
                Err(s) => {
                    last = s;
                    continue;
                }
            };
            match tokio::time::timeout(ATTEMPT_TIMEOUT, f(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(s)) if definite(&s) && write && maybe_applied => {
                    let what = format!("{:?} after an attempt that may have committed: {}", s.code(), s.message());
                    return Err(Status::unknown(what));
                }
                Ok(Err(s)) if definite(&s) => return Err(s),
                Ok(Err(s)) => {
                    maybe_applied = true;
                    last = s;
                }
                Err(_) => {
                    maybe_applied = true;
                    last = Status::deadline_exceeded(format!("{addr}: no answer in {ATTEMPT_TIMEOUT:?}"));
                }
            }
        }
        Err(last)
    }

    /// A read: rounds until an answer or a definite error, within `within`.
    pub async fn read<T>(&self, within: Duration, mut f: Call<T>) -> Result<T, Status> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.round(&mut f, false).await {
                Ok(v) => return Ok(v),
                Err(s) if definite(&s) => return Err(s),
                Err(s) if tokio::time::Instant::now() >= deadline => return Err(s),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn create_topic(&self, name: &str, partitions: i32, rf: i32) -> WriteOutcome<CreateTopicResponse> {
        let request = CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor: rf,
            config: Some(TopicConfig { unclean_leader_election: false }),
        };
        classify(
            self.round(
                &mut call(move |mut c| {
                    let r = request.clone();
                    async move { Ok(c.create_topic(r).await?.into_inner()) }
                }),
                true,
            )
            .await,
        )
    }

    pub async fn delete_topic(&self, name: &str) -> WriteOutcome<u64> {
        let request = DeleteTopicRequest { name: name.into() };
        classify(
            self.round(
                &mut call(move |mut c| {
                    let r = request.clone();
                    async move { Ok(c.delete_topic(r).await?.into_inner().metadata_version) }
                }),
                true,
            )
            .await,
        )
    }

    pub async fn describe(&self, name: &str, within: Duration) -> Result<DescribeTopicResponse, Status> {
        let request = DescribeTopicRequest { name: name.into(), consistency: ReadConsistency::Linearizable as i32 };
        self.read(
            within,
            call(move |mut c| {
                let r = request.clone();
                async move { Ok(c.describe_topic(r).await?.into_inner()) }
            }),
        )
        .await
    }

    pub async fn list_topics(&self, within: Duration) -> Result<ListTopicsResponse, Status> {
        let request = ListTopicsRequest { consistency: ReadConsistency::Linearizable as i32 };
        self.read(within, call(move |mut c| async move { Ok(c.list_topics(request).await?.into_inner()) })).await
    }

    pub async fn list_brokers(&self, within: Duration) -> Result<ListBrokersResponse, Status> {
        self.read(
            within,
            call(|mut c| async move { Ok(c.list_brokers(ListBrokersRequest::default()).await?.into_inner()) }),
        )
        .await
    }

    /// The raft id of the controller leader (1-based), if one is known.
    pub async fn leader(&self) -> Option<u64> {
        let q = self
            .read(
                Duration::from_secs(2),
                call(|mut c| async move { Ok(c.describe_quorum(DescribeQuorumRequest {}).await?.into_inner()) }),
            )
            .await
            .ok()?;
        (q.leader >= 1).then_some(q.leader)
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }
}

/// Boxes an attempt.
fn call<T, F, Fut>(mut f: F) -> Call<T>
where
    F: FnMut(ControllerClient<Channel>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
{
    Box::new(move |c| Box::pin(f(c)))
}

fn classify<T>(r: Result<T, Status>) -> WriteOutcome<T> {
    match r {
        Ok(v) => WriteOutcome::Done(v),
        Err(s) if definite(&s) => WriteOutcome::Refused(s),
        Err(s) => WriteOutcome::Ambiguous(s),
    }
}
