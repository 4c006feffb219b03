//! Write RPCs that reach a follower controller are forwarded to the leader,
//! once: a forwarded request that meets another non-leader is refused with a
//! `baton-leader` hint instead, so requests never loop during elections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use baton_proto::FORWARDED_METADATA_KEY;
use baton_proto::v1::broker_session_client::BrokerSessionClient;
use baton_proto::v1::controller_client::ControllerClient;
use baton_security::{Connector, Expect, Tls};
use dashmap::DashMap;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::not_leader;
use crate::raft::RaftHandle;

/// Where a write must go.
pub enum Route {
    /// This node leads: propose here.
    Local,
    /// Forward to this address.
    Leader(String),
}

/// Lazily connected channels to the other controllers.
pub struct Forwarder {
    channels: DashMap<String, Channel>,
    max_message_bytes: usize,
    /// With mTLS: this controller's certificate, and only a controller at the other end.
    connector: Connector,
}

impl Forwarder {
    pub fn new(max_message_bytes: usize, tls: Option<Arc<Tls>>) -> Forwarder {
        let connector = Connector::new(tls, Expect::AnyController).with_connect_timeout(Duration::from_millis(500));
        Forwarder { channels: DashMap::new(), max_message_bytes, connector }
    }

    /// Decides where a write goes, or refuses it with a leader hint.
    pub fn route<T>(&self, handle: &RaftHandle, request: &Request<T>) -> Result<Route, Status> {
        let status = handle.status();
        if status.is_leader {
            return Ok(Route::Local);
        }
        if request.metadata().contains_key(FORWARDED_METADATA_KEY) {
            return Err(not_leader(handle));
        }
        match handle.remote_leader() {
            Some((_, addr)) => Ok(Route::Leader(addr)),
            None => Err(not_leader(handle)),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        if let Some(c) = self.channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Connector::endpoint(addr)
            .map_err(|e| Status::internal(format!("bad leader address {addr}: {e}")))?
            .connect_timeout(Duration::from_millis(500));
        let channel = self.connector.lazy(endpoint);
        self.channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    fn mark<T>(inner: T, timeout: Option<Duration>) -> Request<T> {
        let mut request = Request::new(inner);
        request.metadata_mut().insert(FORWARDED_METADATA_KEY, MetadataValue::from_static("1"));
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        request
    }

    /// Calls the same `Controller` RPC on the leader.
    pub async fn controller<T, R, F, Fut>(&self, addr: &str, inner: T, call: F) -> Result<Response<R>, Status>
    where
        F: FnOnce(ControllerClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        self.controller_with_timeout(addr, inner, Duration::from_secs(10), call).await
    }

    /// As [`Forwarder::controller`], for calls that may take long.
    pub async fn controller_with_timeout<T, R, F, Fut>(
        &self,
        addr: &str,
        inner: T,
        timeout: Duration,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(ControllerClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let client = ControllerClient::new(self.channel(addr)?)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        call(client, Self::mark(inner, Some(timeout))).await
    }

    /// Calls the same `BrokerSession` RPC on the leader.
    pub async fn broker_session<T, R, F, Fut>(&self, addr: &str, inner: T, call: F) -> Result<Response<R>, Status>
    where
        F: FnOnce(BrokerSessionClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let client = BrokerSessionClient::new(self.channel(addr)?);
        call(client, Self::mark(inner, Some(Duration::from_secs(10)))).await
    }
}
