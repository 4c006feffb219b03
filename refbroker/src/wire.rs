//! Framing (a 4-byte big-endian length before every request and response)
//! and the request/response header dance, on top of `kafka-protocol`'s
//! message codecs. Used by the server and by the follower's client.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted either way; a bigger length prefix closes the
/// connection (Kafka's `socket.request.max.bytes` defaults to 100 MiB; a
/// replica fetch here asks for at most 8 MiB). With the connection bound
/// this caps frame buffers at 4 GiB in the worst case.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte bound")]
    FrameTooLarge(usize),
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("malformed message: {0}")]
    Codec(String),
    #[error("response correlation id {got}, expected {expected}")]
    Correlation { expected: i32, got: i32 },
}

impl WireError {
    pub fn codec(e: impl std::fmt::Display) -> Self {
        Self::Codec(e.to_string())
    }
}

/// Reads one frame; Ok(None) on a clean end of stream before a length.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Bytes>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).map_err(|_| WireError::NegativeLength(len))?;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(Bytes::from(body)))
}

/// Writes `body` (already holding the header) as one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), WireError> {
    let len = i32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge(body.len()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await?;
    Ok(())
}

/// A response body behind its header, for `version` of the request.
pub fn encode_response<M: Encodable + HeaderVersion>(
    correlation_id: i32,
    message: &M,
    version: i16,
) -> Result<BytesMut, WireError> {
    let mut buf = BytesMut::new();
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header.encode(&mut buf, M::header_version(version)).map_err(WireError::codec)?;
    message.encode(&mut buf, version).map_err(WireError::codec)?;
    Ok(buf)
}

/// A request behind its header.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<BytesMut, WireError> {
    let mut buf = BytesMut::new();
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_string(client_id.to_owned()));
    header.encode(&mut buf, R::header_version(version)).map_err(WireError::codec)?;
    request.encode(&mut buf, version).map_err(WireError::codec)?;
    Ok(buf)
}

/// Decodes a response to `R` at `version`, checking its correlation id.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, WireError> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(WireError::codec)?;
    if header.correlation_id != correlation_id {
        return Err(WireError::Correlation { expected: correlation_id, got: header.correlation_id });
    }
    <R::Response as Decodable>::decode(&mut frame, version).map_err(WireError::codec)
}

/// "host:port" → (host, port); None when it is not that shape.
pub fn split_endpoint(endpoint: &str) -> Option<(&str, i32)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then_some((host.trim_start_matches('[').trim_end_matches(']'), i32::from(port)))
}
