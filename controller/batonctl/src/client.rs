//! Failover across the controller quorum.
//!
//! Every call walks the configured controllers in order. A controller that is
//! unreachable, times out, or answers UNAVAILABLE sends us to the next one; a
//! `baton-leader` hint on such an answer is followed once, ahead of the rest.
//! Any other status is the answer and is returned as an [`RpcError`] carrying
//! the typed `baton-error` code. Attempts are bounded by the number of
//! controllers plus the one hint hop, so a call always ends.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::{ERROR_METADATA_KEY, LEADER_METADATA_KEY};
use baton_security::{Connector, Expect, Tls};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long to wait for a TCP + HTTP/2 connection to one controller.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A controller named by a `baton-leader` hint: `"<id>=<host:port>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub id: u64,
    pub addr: String,
}

/// Parses a `baton-leader` metadata value; anything malformed is `None`
/// (a hint is advice, never a reason to fail).
pub fn parse_leader_hint(raw: &str) -> Option<LeaderHint> {
    let (id, addr) = raw.trim().split_once('=')?;
    let id = id.trim().parse::<u64>().ok()?;
    let addr = addr.trim();
    if addr.is_empty() || addr.chars().any(char::is_whitespace) || addr.contains('/') {
        return None;
    }
    let (host, port) = addr.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return None;
    }
    Some(LeaderHint { id, addr: addr.to_owned() })
}

/// What the topic or partition of a failed call was, so a typed error can be
/// worded for the user (`topic "x" not found`) without string-matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub topic: Option<String>,
    pub partition: Option<i32>,
}

impl Subject {
    pub fn topic(name: &str) -> Self {
        Self { topic: Some(name.to_owned()), partition: None }
    }

    pub fn partition(topic: &str, partition: i32) -> Self {
        Self { topic: Some(topic.to_owned()), partition: Some(partition) }
    }
}

/// A final answer from a controller that was not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub grpc_code: Code,
    /// The `baton-error` metadata value, e.g. `TOPIC_NOT_FOUND`.
    pub error_code: Option<String>,
    pub message: String,
    pub subject: Subject,
}

impl RpcError {
    pub fn from_status(status: &Status) -> Self {
        let error_code = status
            .metadata()
            .get(ERROR_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_start_matches("ERROR_CODE_").to_owned())
            .filter(|v| !v.is_empty());
        Self { grpc_code: status.code(), error_code, message: status.message().to_owned(), subject: Subject::default() }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topic = self.subject.topic.as_deref();
        let partition = self.subject.partition;
        match (self.error_code.as_deref(), topic, partition) {
            (Some("TOPIC_NOT_FOUND"), Some(t), _) => write!(f, "topic {t:?} not found")?,
            (Some("TOPIC_ALREADY_EXISTS"), Some(t), _) => write!(f, "topic {t:?} already exists")?,
            (Some("PARTITION_NOT_FOUND"), Some(t), Some(p)) => write!(f, "partition {p} of topic {t:?} not found")?,
            _ if self.message.is_empty() => f.write_str(self.grpc_code.description())?,
            _ => f.write_str(&self.message)?,
        }
        match &self.error_code {
            Some(code) => write!(f, " ({code})"),
            None => write!(f, " (gRPC {})", grpc_code_name(self.grpc_code)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no controller reachable (tried {}): {last_error}", tried.join(", "))]
    NoController { tried: Vec<String>, last_error: String },
    #[error("{0}")]
    Rpc(RpcError),
}

impl ClientError {
    /// Names the topic/partition the call was about, for the error wording.
    pub fn about(self, subject: Subject) -> Self {
        match self {
            Self::Rpc(e) => Self::Rpc(RpcError { subject, ..e }),
            other => other,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The controller answered: report it.
    Final,
    /// This controller cannot serve us now: go on, to the hinted leader first if any.
    TryNext { hint: Option<LeaderHint> },
}

pub fn classify(status: &Status) -> Disposition {
    let not_leader = status
        .metadata()
        .get(ERROR_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start_matches("ERROR_CODE_") == "NOT_CONTROLLER_LEADER");
    let retryable = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        // Transport failures surface as UNKNOWN/INTERNAL with the underlying
        // error attached; application errors never carry a source.
        Code::Unknown | Code::Internal => {
            std::error::Error::source(status).is_some() || status.message().starts_with("Service was not ready")
        }
        _ => false,
    };
    if !(retryable || not_leader) {
        return Disposition::Final;
    }
    let hint = status.metadata().get(LEADER_METADATA_KEY).and_then(|v| v.to_str().ok()).and_then(parse_leader_hint);
    Disposition::TryNext { hint }
}

/// The order in which one call visits controllers. Pure, so the failover
/// policy is tested without a network.
#[derive(Debug)]
pub struct AttemptPlan {
    queue: VecDeque<String>,
    tried: Vec<String>,
    hint_followed: bool,
    attempts_left: usize,
}

impl AttemptPlan {
    /// Visits `controllers` starting at index `start` (wrapping), plus at most
    /// one hinted address.
    pub fn new(controllers: &[String], start: usize) -> Self {
        let mut queue = VecDeque::with_capacity(controllers.len() + 1);
        let n = controllers.len();
        for i in 0..n {
            let addr = &controllers[(start + i) % n];
            if !queue.contains(addr) {
                queue.push_back(addr.clone());
            }
        }
        let attempts_left = queue.len() + 1;
        Self { queue, tried: Vec::new(), hint_followed: false, attempts_left }
    }

    pub fn next_addr(&mut self) -> Option<String> {
        if self.attempts_left == 0 {
            return None;
        }
        let addr = self.queue.pop_front()?;
        self.attempts_left -= 1;
        if !self.tried.contains(&addr) {
            self.tried.push(addr.clone());
        }
        Some(addr)
    }

    /// Records that `current` could not serve the call; a hint naming another
    /// controller is tried next, once per call.
    pub fn on_unavailable(&mut self, current: &str, hint: Option<LeaderHint>) {
        let Some(hint) = hint else { return };
        if self.hint_followed || hint.addr == current {
            return;
        }
        self.hint_followed = true;
        self.queue.retain(|a| a != &hint.addr);
        self.queue.push_front(hint.addr);
    }

    pub fn tried(&self) -> &[String] {
        &self.tried
    }
}

/// The controllers and deadlines of one `batonctl` run.
#[derive(Debug, Clone)]
pub struct Controllers {
    addrs: Vec<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    connector: Connector,
}

impl Controllers {
    /// Plaintext until [`Controllers::with_tls`].
    pub fn new(addrs: Vec<String>, request_timeout: Duration) -> Self {
        let connector = Connector::new(None, Expect::AnyController).with_connect_timeout(CONNECT_TIMEOUT);
        Self { addrs, request_timeout, connect_timeout: CONNECT_TIMEOUT, connector }
    }

    /// Dial with mTLS (our certificate; only a controller at the other end).
    pub fn with_tls(mut self, tls: Option<Arc<Tls>>) -> Self {
        self.connector = Connector::new(tls, Expect::AnyController).with_connect_timeout(self.connect_timeout);
        self
    }

    /// Position of `addr` in the configured list, to resume after it.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.addrs.iter().position(|a| a == addr)
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// A unary request with the call deadline also sent to the server.
    pub fn unary<M>(&self, message: M) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.request_timeout);
        request
    }

    /// Runs `rpc` against the controllers from the first one on.
    pub async fn call<T, F, Fut>(&self, rpc: F) -> Result<T, ClientError>
    where
        F: FnMut(ControllerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_from(0, rpc).await.map(|(value, _)| value)
    }

    /// Runs `rpc` starting at controller `start`; returns the answer and the
    /// address of the controller that gave it. Each attempt is bounded by the
    /// request timeout (for a stream: until the response headers arrive).
    pub async fn call_from<T, F, Fut>(&self, start: usize, mut rpc: F) -> Result<(T, String), ClientError>
    where
        F: FnMut(ControllerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut plan = AttemptPlan::new(&self.addrs, start);
        let mut last_error = "no controllers configured".to_owned();
        while let Some(addr) = plan.next_addr() {
            let client = match self.connect(&addr).await {
                Ok(client) => client,
                Err(e) => {
                    last_error = format!("{addr}: {e}");
                    continue;
                }
            };
            let outcome = match tokio::time::timeout(self.request_timeout, rpc(client)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    Err(Status::deadline_exceeded(format!("no answer within {} ms", self.request_timeout.as_millis())))
                }
            };
            let status = match outcome {
                Ok(response) => return Ok((response.into_inner(), addr)),
                Err(status) => status,
            };
            match classify(&status) {
                Disposition::Final => return Err(ClientError::Rpc(RpcError::from_status(&status))),
                Disposition::TryNext { hint } => {
                    last_error = format!("{addr}: {}", describe_status(&status));
                    plan.on_unavailable(&addr, hint);
                }
            }
        }
        Err(ClientError::NoController { tried: plan.tried().to_vec(), last_error })
    }

    async fn connect(&self, addr: &str) -> Result<ControllerClient<Channel>, String> {
        let endpoint = Connector::endpoint(addr)
            .map_err(|e| format!("invalid address: {e}"))?
            .connect_timeout(self.connect_timeout);
        // The outer bound also covers name resolution, which connect_timeout does not.
        match tokio::time::timeout(self.connect_timeout, self.connector.connect(endpoint)).await {
            Ok(Ok(channel)) => Ok(ControllerClient::new(channel)),
            Ok(Err(e)) => Err(format!("connect failed: {}", innermost_cause(&e))),
            Err(_) => Err(format!("connect timed out after {} ms", self.connect_timeout.as_millis())),
        }
    }
}

/// A status for the "last error" of an exhausted failover, on one line.
pub fn describe_status(status: &Status) -> String {
    let rpc = RpcError::from_status(status);
    let mut text =
        if status.message().is_empty() { status.code().description().to_owned() } else { status.message().to_owned() };
    if let Some(source) = std::error::Error::source(status) {
        text = format!("{text}: {}", innermost_cause(source));
    }
    match rpc.error_code {
        Some(code) => format!("{text} ({code})"),
        None => format!("{text} (gRPC {})", grpc_code_name(status.code())),
    }
}

/// The root cause of a transport error ("Connection refused (os error 111)"):
/// tonic's own layers only say "transport error".
fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    // Bounded: error chains are short, but never trust a cycle.
    for _ in 0..16 {
        match cause.source() {
            Some(next) => cause = next,
            None => break,
        }
    }
    cause.to_string()
}

/// The canonical gRPC name of a code (`NOT_FOUND`), as grpcurl prints it.
pub fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod failover_tests;
