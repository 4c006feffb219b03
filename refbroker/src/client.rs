//! The follower's side of the Kafka protocol: one connection to a leader,
//! one request at a time, every call bounded by a timeout.

use std::time::Duration;

use kafka_protocol::protocol::Request;
use tokio::net::TcpStream;

use crate::wire::{WireError, decode_response, encode_request, read_frame, write_frame};

pub struct Connection {
    endpoint: String,
    stream: TcpStream,
    correlation_id: i32,
    client_id: String,
}

impl Connection {
    pub async fn connect(endpoint: &str, client_id: String, timeout: Duration) -> Result<Self, WireError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| WireError::Io(std::io::ErrorKind::TimedOut.into()))??;
        stream.set_nodelay(true)?;
        Ok(Self { endpoint: endpoint.to_owned(), stream, correlation_id: 0, client_id })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, WireError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        let body = encode_request(request, version, id, &self.client_id)?;
        let exchange = async {
            write_frame(&mut self.stream, &body).await?;
            read_frame(&mut self.stream).await?.ok_or_else(|| WireError::Io(std::io::ErrorKind::UnexpectedEof.into()))
        };
        let frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| WireError::Io(std::io::ErrorKind::TimedOut.into()))??;
        decode_response::<R>(frame, version, id)
    }
}
