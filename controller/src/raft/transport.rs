//! Raft messages between controllers over gRPC (`baton.v1.Raft`).
//!
//! Outgoing: one task per peer holds a client-streaming `Send` call and feeds
//! it batches from a bounded queue. A full queue or a broken link drops
//! messages (raft retransmits) and reports the peer unreachable. Snapshots go
//! through `SendSnapshot` in chunks so no message exceeds the size bound.
//! Incoming: [`RaftService`] decodes and steps messages from configured peers
//! only; raft's codec never sees bytes from anyone else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use baton_proto::v1::raft_client::RaftClient;
use baton_proto::v1::raft_server::Raft;
use baton_proto::v1::{RaftAck, RaftMessageBatch, SnapshotChunk};
use baton_security::{Connector, Expect, Principal, Tls};
use futures::StreamExt;
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use super::{DriverMsg, Members, RaftHandle};

/// Bound on queued outgoing messages per peer.
const PEER_QUEUE: usize = 4096;
/// Bound on messages per batch on the wire.
const MAX_BATCH_MESSAGES: usize = 256;
/// Snapshot data travels in chunks of this size.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Largest snapshot a controller accepts from a peer.
const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

pub(crate) struct Transport {
    self_id: u64,
    /// One link per other member: its address and its queue.
    peers: HashMap<u64, (String, mpsc::Sender<Message>)>,
    driver: mpsc::Sender<DriverMsg>,
    max_message_bytes: usize,
    tls: Option<Arc<Tls>>,
    /// Links run on the runtime that serves gRPC, never on the driver's
    /// own thread (which blocks in fsync).
    runtime: tokio::runtime::Handle,
}

impl Transport {
    /// No links yet: the driver calls [`Transport::set_members`] once it
    /// knows the configuration.
    /// Call on the serving runtime: its handle is kept for the links.
    pub(crate) fn new(
        self_id: u64,
        driver: mpsc::Sender<DriverMsg>,
        max_message_bytes: usize,
        tls: Option<Arc<Tls>>,
    ) -> Transport {
        let runtime = tokio::runtime::Handle::current();
        Transport { self_id, peers: HashMap::new(), driver, max_message_bytes, tls, runtime }
    }

    /// Keeps exactly one sender task per member of the raft configuration
    /// (other than this node) whose address is known: starts links for new
    /// members, restarts those whose address changed, and ends the links of
    /// removed members (their task stops when its queue is dropped).
    pub(crate) fn set_members(&mut self, members: &BTreeSet<u64>, addresses: &BTreeMap<u64, String>) {
        self.peers.retain(|id, (addr, _)| members.contains(id) && addresses.get(id) == Some(addr));
        let missing: Vec<u64> =
            members.iter().copied().filter(|id| *id != self.self_id && !self.peers.contains_key(id)).collect();
        for id in missing {
            let Some(addr) = addresses.get(&id) else {
                warn!(peer = id, "no address known for a raft member; it gets no messages from here");
                continue;
            };
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            self.peers.insert(id, (addr.clone(), tx));
            let link = PeerLink {
                from: self.self_id,
                to: id,
                addr: addr.clone(),
                driver: self.driver.clone(),
                max_message_bytes: self.max_message_bytes,
                // With mTLS, a link talks only to the controller it is for.
                connector: Connector::new(self.tls.clone(), Expect::Controller(id))
                    .with_connect_timeout(Duration::from_millis(500)),
            };
            self.runtime.spawn(link.run(rx));
        }
    }

    /// Queues messages without waiting; what does not fit is dropped (raft
    /// retransmits), except that a dropped snapshot is reported as failed:
    /// raft-rs keeps a peer paused in Snapshot state until it hears.
    pub(crate) fn send(&self, messages: Vec<Message>) {
        for m in messages {
            let to = m.to;
            let is_snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let sent = match self.peers.get(&to) {
                Some((_, tx)) => tx.try_send(m).is_ok(),
                None => false,
            };
            if !sent {
                debug!(to, is_snapshot, "raft message dropped (queue full or unknown peer)");
                if is_snapshot {
                    report_snapshot_failure(&self.driver, to);
                }
            }
        }
    }
}

/// Tells the driver a snapshot never left; called from inside a Ready, so it
/// goes through the driver's queue (never `report_snapshot` mid-Ready).
fn report_snapshot_failure(driver: &mpsc::Sender<DriverMsg>, to: u64) {
    if driver.try_send(DriverMsg::SnapshotDone { to, ok: false }).is_err() {
        let driver = driver.clone();
        tokio::spawn(async move {
            let _ = driver.send(DriverMsg::SnapshotDone { to, ok: false }).await;
        });
    }
}

struct PeerLink {
    from: u64,
    to: u64,
    addr: String,
    driver: mpsc::Sender<DriverMsg>,
    max_message_bytes: usize,
    connector: Connector,
}

impl PeerLink {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut backoff = Duration::from_millis(50);
        while let Some(first) = rx.recv().await {
            let client = match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    debug!(peer = self.to, error = %e, "raft peer unreachable");
                    self.unreachable().await;
                    // Drop what queued up meanwhile: raft will resend; a
                    // snapshot among them is reported as failed.
                    for m in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                        if m.get_msg_type() == MessageType::MsgSnapshot {
                            report_snapshot_failure(&self.driver, self.to);
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            self.stream_to(client, first, &mut rx).await;
            self.unreachable().await;
        }
    }

    async fn connect(&self) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        let endpoint = Connector::endpoint(&self.addr)?
            .connect_timeout(Duration::from_millis(500))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = self.connector.connect(endpoint).await?;
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    /// Feeds one long-lived `Send` call until it or the queue ends.
    async fn stream_to(&self, client: RaftClient<Channel>, first: Message, rx: &mut mpsc::Receiver<Message>) {
        let (batch_tx, batch_rx) = mpsc::channel::<RaftMessageBatch>(32);
        let mut client_for_call = client.clone();
        let mut call = pin!(client_for_call.send(ReceiverStream::new(batch_rx)));
        let mut next = Some(first);
        loop {
            let msg = match next.take() {
                Some(m) => m,
                None => tokio::select! {
                    m = rx.recv() => match m { Some(m) => m, None => return },
                    r = &mut call => { if let Err(e) = r { debug!(peer = self.to, error = %e, "raft stream ended"); } return; }
                },
            };
            let mut batch = RaftMessageBatch { from: self.from, messages: Vec::new() };
            let mut batch_bytes = 0usize;
            let mut pending = Some(msg);
            while let Some(m) = pending.take() {
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    tokio::spawn(send_snapshot(client.clone(), self.from, m, self.driver.clone()));
                } else {
                    super::driver::trace_message(&m, "taken by the link");
                    match m.write_to_bytes() {
                        Ok(bytes) => {
                            batch_bytes += bytes.len();
                            batch.messages.push(bytes);
                        }
                        Err(e) => warn!(error = %e, "encoding a raft message failed; dropped"),
                    }
                }
                // Bounded by count and by bytes (half the message limit).
                if batch.messages.len() < MAX_BATCH_MESSAGES && batch_bytes < self.max_message_bytes / 2 {
                    pending = rx.try_recv().ok();
                }
            }
            if batch.messages.is_empty() {
                continue;
            }
            tokio::select! {
                r = batch_tx.send(batch) => if r.is_err() { return },
                r = &mut call => { if let Err(e) = r { debug!(peer = self.to, error = %e, "raft stream ended"); } return; }
            }
        }
    }

    async fn unreachable(&self) {
        let _ = self.driver.send(DriverMsg::Unreachable(self.to)).await;
    }
}

async fn send_snapshot(mut client: RaftClient<Channel>, from: u64, mut msg: Message, driver: mpsc::Sender<DriverMsg>) {
    let to = msg.to;
    let data = msg.mut_snapshot().take_data();
    let result = async {
        let header = msg.write_to_bytes().map_err(|e| Status::internal(e.to_string()))?;
        let total_len = data.len() as u64;
        let crc32 = crc32fast::hash(&data);
        let mut chunks = Vec::with_capacity(data.len() / SNAPSHOT_CHUNK_BYTES + 1);
        let mut slices = data.chunks(SNAPSHOT_CHUNK_BYTES).peekable();
        chunks.push(SnapshotChunk {
            from,
            message: header,
            data: slices.next().map(|s| s.to_vec()).unwrap_or_default(),
            total_len,
            crc32,
        });
        for s in slices {
            chunks.push(SnapshotChunk { from, data: s.to_vec(), ..Default::default() });
        }
        client.send_snapshot(futures::stream::iter(chunks)).await
    }
    .await;
    let ok = match result {
        Ok(_) => true,
        Err(e) => {
            warn!(peer = to, error = %e, "sending a snapshot failed");
            false
        }
    };
    let _ = driver.send(DriverMsg::SnapshotDone { to, ok }).await;
}

/// The incoming side: `baton.v1.Raft` on every controller.
pub struct RaftService {
    handle: RaftHandle,
    members: Arc<Members>,
}

impl RaftService {
    pub fn new(handle: RaftHandle) -> RaftService {
        let members = handle.members().clone();
        RaftService { handle, members }
    }

    /// Only controllers this node knows (configured peers, or added through
    /// a membership change) may send raft messages, and with mTLS only as
    /// the controller their certificate names (the auth layer already
    /// refused every identity that is not a controller).
    fn check_peer(&self, from: u64, proven: Option<&Principal>) -> Result<(), Status> {
        if let Some(p) = proven
            && *p != Principal::Controller(from)
        {
            warn!(identity = %p, claimed = from, "refused raft messages claiming another controller's id");
            return Err(Status::permission_denied(format!("{p} may not send raft messages as controller {from}")));
        }
        if from != self.handle.id() && self.members.address(from).is_some() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!("raft message from {from}, which is not a known controller")))
        }
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn send(&self, request: Request<Streaming<RaftMessageBatch>>) -> Result<Response<RaftAck>, Status> {
        let proven = crate::service::auth::principal(&request).cloned();
        let mut stream = request.into_inner();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.check_peer(batch.from, proven.as_ref())?;
            for bytes in batch.messages {
                let msg = Message::parse_from_bytes(&bytes)
                    .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))?;
                if msg.from != batch.from {
                    return Err(Status::invalid_argument("raft message sender does not match its batch"));
                }
                super::driver::trace_message(&msg, "received");
                self.handle.step(msg).await.map_err(|_| Status::unavailable("controller shutting down"))?;
            }
        }
        Ok(Response::new(RaftAck {}))
    }

    async fn send_snapshot(&self, request: Request<Streaming<SnapshotChunk>>) -> Result<Response<RaftAck>, Status> {
        let proven = crate::service::auth::principal(&request).cloned();
        let mut stream = request.into_inner();
        let first = stream.next().await.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        self.check_peer(first.from, proven.as_ref())?;
        if first.total_len > MAX_SNAPSHOT_BYTES {
            return Err(Status::invalid_argument(format!("snapshot of {} bytes is over the bound", first.total_len)));
        }
        let mut msg = Message::parse_from_bytes(&first.message)
            .map_err(|e| Status::invalid_argument(format!("undecodable snapshot message: {e}")))?;
        if msg.get_msg_type() != MessageType::MsgSnapshot || msg.from != first.from {
            return Err(Status::invalid_argument("first snapshot chunk is not a MsgSnapshot from its sender"));
        }
        // Grow with the data that actually arrives, not the announced length.
        let mut data = Vec::with_capacity(first.data.len());
        if first.data.len() as u64 > first.total_len {
            return Err(Status::invalid_argument("snapshot data longer than announced"));
        }
        data.extend_from_slice(&first.data);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if data.len() as u64 + chunk.data.len() as u64 > first.total_len {
                return Err(Status::invalid_argument("snapshot data longer than announced"));
            }
            data.extend_from_slice(&chunk.data);
        }
        if data.len() as u64 != first.total_len || crc32fast::hash(&data) != first.crc32 {
            return Err(Status::data_loss("snapshot data is truncated or fails its checksum"));
        }
        msg.mut_snapshot().set_data(data.into());
        self.handle.step(msg).await.map_err(|_| Status::unavailable("controller shutting down"))?;
        Ok(Response::new(RaftAck {}))
    }
}
