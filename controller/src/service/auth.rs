//! Who may call what, and how much at once: one tower layer in front of
//! every service of the controller's port (docs/SECURITY.md).
//!
//! mTLS proves each connection's identity ([`baton_security::Peer`], put in
//! every request's extensions by the accept loop). This layer maps the gRPC
//! path to the access it needs and refuses with PERMISSION_DENIED +
//! `PERMISSION_DENIED` before any handler runs:
//!
//! | access      | paths                                              | who                          |
//! |-------------|----------------------------------------------------|------------------------------|
//! | peer        | `baton.v1.Raft/*`                                  | controllers                  |
//! | broker      | `baton.v1.BrokerSession/*`                         | brokers, controllers (forwarding) |
//! | admin       | topic create/delete, elections, drain, reassign, quorum | admins, controllers     |
//! | read        | other `baton.v1.Controller` RPCs, health, reflection | anyone (`auth.open_reads`), else admins |
//!
//! Anything else is treated as admin (deny by default). The one check a path
//! cannot decide, that a broker speaks only for the id its certificate names,
//! is [`authorize_broker`], called where a request claims a broker id.
//!
//! Unary RPCs of the public API are also bounded here: at most
//! `limits.max_inflight_requests` at once (one more is shed at once with
//! UNAVAILABLE + `OVERLOADED`), each within `limits.request_timeout_ms`
//! (DEADLINE_EXCEEDED + `TIMEOUT`). Streams are bounded per connection by
//! HTTP/2 settings instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use baton_proto::v1::ErrorCode;
use baton_security::{Peer, Principal};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::{Code, Request, Status};
use tower::{Layer, Service};
use tracing::warn;

use super::typed_status;

/// What a path needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Peer,
    Broker,
    Admin,
    Read,
}

const CONTROLLER: &str = "baton.v1.Controller";
const ADMIN_METHODS: [&str; 8] = [
    "CreateTopic",
    "DeleteTopic",
    "ElectLeaders",
    "DrainBroker",
    "UndrainBroker",
    "AlterPartitionReassignments",
    "AddController",
    "RemoveController",
];
/// Streaming methods of the public API (no request timeout, no in-flight slot).
const STREAMING_METHODS: [&str; 1] = ["WatchLeadership"];

/// The access a gRPC path (`/package.Service/Method`) needs.
pub fn access(path: &str) -> Access {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    match service {
        "baton.v1.Raft" => Access::Peer,
        "baton.v1.BrokerSession" => Access::Broker,
        CONTROLLER if ADMIN_METHODS.contains(&method) => Access::Admin,
        CONTROLLER => Access::Read,
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Access::Read,
        _ => Access::Admin,
    }
}

/// Whether `principal` may use `access`.
pub fn allowed(access: Access, principal: &Principal, open_reads: bool) -> bool {
    use Principal as P;
    match (access, principal) {
        (_, P::Controller(_)) => true,
        (Access::Peer, _) => false,
        (Access::Broker, P::Broker(_)) => true,
        (Access::Broker, _) => false,
        (Access::Admin, P::Admin(_)) => true,
        (Access::Admin, _) => false,
        (Access::Read, P::Admin(_)) => true,
        (Access::Read, _) => open_reads,
    }
}

/// A request for broker `broker_id` is allowed only from that broker's
/// certificate, or from a controller forwarding it (which checked it).
/// Without TLS nothing was proven and everything passes.
pub fn authorize_broker(peer: Option<&Peer>, broker_id: i32) -> Result<(), Status> {
    match peer.and_then(|p| p.principal.as_ref()) {
        None | Some(Principal::Controller(_)) => Ok(()),
        Some(Principal::Broker(id)) if *id == broker_id => Ok(()),
        Some(other) => {
            let remote = peer.and_then(|p| p.remote);
            warn!(identity = %other, claimed = broker_id, ?remote, "refused: a certificate speaking for another broker");
            Err(typed_status(
                Code::PermissionDenied,
                ErrorCode::PermissionDenied,
                format!("{other} may not act as broker {broker_id}"),
            ))
        }
    }
}

/// The identity proven on a request's connection, if any.
pub fn principal<T>(request: &Request<T>) -> Option<&Principal> {
    request.extensions().get::<Peer>().and_then(|p| p.principal.as_ref())
}

/// Settings of [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Policy {
    /// False on a plaintext listener: no identity, no authorization.
    pub enforce: bool,
    pub open_reads: bool,
    pub request_timeout: Duration,
    pub max_inflight: usize,
}

#[derive(Clone)]
pub struct AuthLayer {
    policy: Arc<Policy>,
    inflight: Arc<Semaphore>,
}

impl AuthLayer {
    pub fn new(policy: Policy) -> AuthLayer {
        let inflight = Arc::new(Semaphore::new(policy.max_inflight));
        AuthLayer { policy: Arc::new(policy), inflight }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, policy: self.policy.clone(), inflight: self.inflight.clone() }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    policy: Arc<Policy>,
    inflight: Arc<Semaphore>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for Auth<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let need = access(&path);
        if self.policy.enforce {
            let peer = request.extensions().get::<Peer>();
            let verdict = match peer.and_then(|p| p.principal.as_ref()) {
                Some(p) if allowed(need, p, self.policy.open_reads) => None,
                Some(p) => Some(format!("{p} may not call {path} (needs {need:?} access)")),
                None => Some(format!("no verified identity for {path}")),
            };
            if let Some(message) = verdict {
                warn!(remote = ?peer.and_then(|p| p.remote), %message, "refused");
                let status = typed_status(Code::PermissionDenied, ErrorCode::PermissionDenied, message);
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        let method = path.rsplit('/').next().unwrap_or_default();
        let bounded = path.starts_with(&format!("/{CONTROLLER}/")) && !STREAMING_METHODS.contains(&method);
        // Swap in the clone that was polled ready (tower's clone-and-swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !bounded {
            return Box::pin(inner.call(request));
        }
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            let status = typed_status(
                Code::Unavailable,
                ErrorCode::Overloaded,
                format!("{} requests in progress on this controller; retry with backoff", self.policy.max_inflight),
            );
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let timeout = self.policy.request_timeout;
        Box::pin(async move {
            let _permit = permit;
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(result) => result,
                Err(_) => Ok(typed_status(
                    Code::DeadlineExceeded,
                    ErrorCode::Timeout,
                    format!("{path} took longer than {} ms", timeout.as_millis()),
                )
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_reaches_exactly_its_paths() {
        let c = Principal::Controller(1);
        let b = Principal::Broker(2);
        let a = Principal::Admin("ops".into());
        let r = Principal::Client("dash".into());
        let cases = [
            ("/baton.v1.Raft/Send", [true, false, false, false]),
            ("/baton.v1.BrokerSession/Session", [true, true, false, false]),
            ("/baton.v1.Controller/CreateTopic", [true, false, true, false]),
            ("/baton.v1.Controller/AddController", [true, false, true, false]),
            ("/baton.v1.Controller/GetPartitionLeader", [true, true, true, true]),
            ("/grpc.health.v1.Health/Check", [true, true, true, true]),
            ("/some.Other/Thing", [true, false, true, false]),
        ];
        for (path, expected) in cases {
            let got = [&c, &b, &a, &r].map(|p| allowed(access(path), p, true));
            assert_eq!(got, expected, "{path}");
        }
        assert!(!allowed(access("/baton.v1.Controller/ListTopics"), &b, false));
        assert!(allowed(access("/baton.v1.Controller/ListTopics"), &a, false));
    }
}

#[cfg(test)]
mod broker_tests {
    use super::*;

    #[test]
    fn a_broker_certificate_speaks_only_for_its_own_id() {
        let peer = |p: Principal| Peer { remote: None, principal: Some(p) };
        assert!(authorize_broker(Some(&peer(Principal::Broker(2))), 2).is_ok());
        let refused = authorize_broker(Some(&peer(Principal::Broker(2))), 1).expect_err("refused");
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(authorize_broker(Some(&peer(Principal::Admin("ops".into()))), 1).is_err());
        assert!(authorize_broker(Some(&peer(Principal::Controller(3))), 1).is_ok(), "forwarded by a controller");
        assert!(authorize_broker(Some(&Peer { remote: None, principal: None }), 1).is_ok(), "plaintext");
    }
}
