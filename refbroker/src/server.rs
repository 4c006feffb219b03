//! Connections: one task each, requests handled one at a time in arrival
//! order (as Kafka does per connection), so pipelined responses keep their
//! order. A malformed frame or an unsupported request closes the connection,
//! which is what Kafka clients expect of a broker.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

use crate::Broker;
use crate::handlers;
use crate::wire::{WireError, read_frame, write_frame};

/// Bound on concurrent client connections; past it new ones are closed.
pub const MAX_CONNECTIONS: usize = 256;

pub(crate) async fn serve(broker: Arc<Broker>, listener: TcpListener) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = listener.accept().await?;
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing a new connection");
            continue;
        };
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            if let Err(error) = connection(&broker, stream).await {
                tracing::debug!(%peer, %error, "connection closed");
            }
            drop(permit);
        });
    }
}

async fn connection(broker: &Broker, stream: TcpStream) -> Result<(), WireError> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    while let Some(frame) = read_frame(&mut read).await? {
        if let Some(response) = handle(broker, frame).await? {
            write_frame(&mut write, &response).await?;
        }
    }
    Ok(())
}

/// One request → its response, or None (acks=0 produce).
async fn handle(broker: &Broker, frame: Bytes) -> Result<Option<BytesMut>, WireError> {
    if frame.len() < 8 {
        return Err(WireError::Codec(format!("request of {} bytes", frame.len())));
    }
    let mut peek = &frame[..8];
    let (api_key, version, correlation_id) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
    let key = ApiKey::try_from(api_key).map_err(|_| WireError::Codec(format!("unknown api key {api_key}")))?;
    let Some(range) = handlers::supported(key) else {
        return Err(WireError::Codec(format!("unsupported api {key:?}")));
    };
    if !(range.0..=range.1).contains(&version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges.
            return handlers::api_versions_unsupported(correlation_id).map(Some);
        }
        return Err(WireError::Codec(format!("unsupported version {version} of {key:?}")));
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version)).map_err(WireError::codec)?;
    handlers::dispatch(broker, key, version, header.correlation_id, body).await
}
