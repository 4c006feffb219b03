//! A TCP fault proxy: one per link, no root needed.
//!
//! A [`Proxy`] listens on `127.0.0.1:0` and forwards every connection it
//! accepts to one target address. The side that connects to the proxy is the
//! *client* (a), the target is (b). A test points a process at
//! [`Proxy::addr`] instead of the real address and then changes the faults on
//! the link through a [`LinkHandle`] (cheap to clone, `Send + Sync`, usable
//! from any thread or task):
//!
//! | control | effect |
//! |---|---|
//! | [`pass`](LinkHandle::pass) | bytes flow both ways (cuts lifted, delays kept) |
//! | [`cut`](LinkHandle::cut) | blackhole both ways: sockets stay open, no FIN, no RST, nothing arrives |
//! | [`cut_one_way`](LinkHandle::cut_one_way) | blackhole one direction, the other flows |
//! | [`delay`](LinkHandle::delay) | fixed + uniform jitter, per direction; byte order is kept |
//! | [`loss`](LinkHandle::loss) | each chunk "lost" with a probability: held for a retransmission timeout |
//! | [`drop_connections`](LinkHandle::drop_connections) | reset every open connection (RST to both sides) |
//! | [`heal`](LinkHandle::heal) | no fault at all: no cut, no delay |
//!
//! **Cuts are blackholes.** A real partition sends no FIN: the peers only
//! notice through their own timeouts (keepalives, leases, raft heartbeats).
//! While a direction is cut the proxy stops *reading* from its source, so the
//! kernel's TCP windows fill and the sender blocks; nothing is buffered beyond
//! [`CHUNKS_IN_FLIGHT`] chunks of at most [`CHUNK`] bytes per direction per
//! connection. Bytes caught in flight when the cut starts are held, not lost,
//! and delivered after the heal, as TCP retransmission would. A connection
//! opened while the link is cut either way is accepted (the proxy's kernel
//! completes the handshake) but the proxy connects to the target only once
//! both directions pass again, so the target sees nothing during the cut.
//!
//! **One-way cuts are application-level.** Each TCP leg stays healthy, so
//! messages a→b vanish while b→a still arrive (requests lost, answers
//! delivered, or the reverse). On a real network a one-way IP cut also loses
//! the ACKs, and both directions of the connection eventually stall.
//!
//! **Loss is retransmission.** A proxy sits above TCP and cannot drop a
//! segment: what an application sees of a lost segment is the stream
//! stopping until the sender retransmits it, one retransmission timeout
//! later (at least 200 ms on Linux), with everything behind it waiting
//! (head-of-line blocking), and the timeout doubling when the retransmission
//! is lost too. [`loss`](LinkHandle::loss) models exactly that: each chunk
//! read is "lost" with the given probability and then delivered
//! [`MIN_RTO`] × 2^(losses in a row − 1) later (capped at [`MAX_RTO`]),
//! never overtaking the chunk ahead. Nothing is dropped for good (TCP gives
//! a connection up only after minutes of this). Real segment loss needs the
//! kernel: see `nemesis::netns` (iptables `statistic` drops in a network
//! namespace, root only).
//!
//! **Drops are resets.** `drop_connections` closes both sockets with
//! `SO_LINGER = 0`, so both peers get an RST, like a NAT/conntrack entry
//! expiring or a firewall injecting resets. An agent whose session is reset
//! while it lives is exactly the case `docs/SAFETY.md` calls **unsafe for the
//! fast-failover path** (`liveness.fast_failover_on_disconnect`): use it on
//! agent↔controller links only with that path turned off, or to show that it
//! must be. A cut never closes anything and is always fair game.
//!
//! An error on either side resets the other side too; a FIN on one side is
//! passed on as a FIN (half close) once the bytes before it are delivered.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The most the proxy reads from a socket at once.
pub const CHUNK: usize = 16 * 1024;
/// Chunks read but not yet written, per direction of a connection. With the
/// one chunk a blocked reader may hold, this bounds the proxy's memory per
/// connection at about 2 × 17 × [`CHUNK`].
pub const CHUNKS_IN_FLIGHT: usize = 16;
/// The retransmission timeout of a first loss (Linux's minimum RTO).
pub const MIN_RTO: Duration = Duration::from_millis(200);
/// The longest a run of losses holds a chunk.
pub const MAX_RTO: Duration = Duration::from_millis(3_200);

/// One direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// a→b: from the side that connected to the proxy to the target.
    ClientToTarget,
    /// b→a: from the target back to the side that connected.
    TargetToClient,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::ClientToTarget, Direction::TargetToClient];
}

/// The faults on one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirFaults {
    /// Blackholed: nothing is read from the source, nothing is written.
    pub cut: bool,
    /// Every chunk is delivered no earlier than `delay` + U[0, `jitter`] after
    /// it was read (and never before the chunk ahead of it).
    pub delay: Duration,
    pub jitter: Duration,
    /// Probability, in thousandths, that a chunk is lost and retransmitted
    /// (held for a retransmission timeout, see the module docs).
    pub loss_permille: u32,
}

/// The faults on both directions of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFaults {
    pub client_to_target: DirFaults,
    pub target_to_client: DirFaults,
}

impl LinkFaults {
    pub fn get(&self, dir: Direction) -> DirFaults {
        match dir {
            Direction::ClientToTarget => self.client_to_target,
            Direction::TargetToClient => self.target_to_client,
        }
    }

    pub fn get_mut(&mut self, dir: Direction) -> &mut DirFaults {
        match dir {
            Direction::ClientToTarget => &mut self.client_to_target,
            Direction::TargetToClient => &mut self.target_to_client,
        }
    }

    /// True when nothing is cut either way (delays may remain).
    pub fn passes_both_ways(&self) -> bool {
        !self.client_to_target.cut && !self.target_to_client.cut
    }
}

/// Counters of one proxy since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections accepted from clients.
    pub accepted: u64,
    /// Connections currently open (including those waiting for a cut to lift).
    pub open: u64,
    /// Bytes delivered to the target / to the client.
    pub bytes_client_to_target: u64,
    pub bytes_target_to_client: u64,
    /// Connections reset by `drop_connections`.
    pub dropped: u64,
    /// Chunks held for a retransmission timeout by `loss`.
    pub lost: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct State {
    faults: LinkFaults,
    /// Bumped by `drop_connections`: every connection older than the bump resets.
    resets: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    to_target: AtomicU64,
    to_client: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
}

struct Shared {
    target: SocketAddr,
    seed: u64,
    state: watch::Sender<State>,
    counters: Counters,
}

/// The controls of one link. Clone it freely; every clone drives the same proxy.
#[derive(Clone)]
pub struct LinkHandle {
    shared: Arc<Shared>,
}

impl LinkHandle {
    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// The faults now in force.
    pub fn faults(&self) -> LinkFaults {
        self.shared.state.borrow().faults
    }

    /// Replaces every fault at once (any combination of cuts and delays).
    pub fn set_faults(&self, faults: LinkFaults) {
        self.shared.state.send_modify(|s| s.faults = faults);
    }

    /// Bytes flow both ways again; delays stay as they are.
    pub fn pass(&self) {
        self.shared.state.send_modify(|s| {
            s.faults.client_to_target.cut = false;
            s.faults.target_to_client.cut = false;
        });
    }

    /// Blackholes both directions without closing anything.
    pub fn cut(&self) {
        self.shared.state.send_modify(|s| {
            s.faults.client_to_target.cut = true;
            s.faults.target_to_client.cut = true;
        });
    }

    /// Blackholes `dir` only; the other direction flows (its delay is kept).
    pub fn cut_one_way(&self, dir: Direction) {
        self.shared.state.send_modify(|s| {
            for d in Direction::BOTH {
                s.faults.get_mut(d).cut = d == dir;
            }
        });
    }

    /// Delays `dir` by `fixed` plus a uniform jitter in `[0, jitter]`.
    pub fn delay(&self, dir: Direction, fixed: Duration, jitter: Duration) {
        self.shared.state.send_modify(|s| {
            let f = s.faults.get_mut(dir);
            f.delay = fixed;
            f.jitter = jitter;
        });
    }

    /// Loses each chunk of `dir` with probability `permille`/1000 (held for
    /// a retransmission timeout, see the module docs); 0 ends the loss.
    pub fn loss(&self, dir: Direction, permille: u32) {
        self.shared.state.send_modify(|s| s.faults.get_mut(dir).loss_permille = permille.min(1000));
    }

    /// Resets every open connection (RST to both sides) and returns how many
    /// there were. New connections are accepted as before. **Unsafe for the
    /// fast-failover path** on agent↔controller links: see the module docs.
    pub fn drop_connections(&self) -> u64 {
        let open = self.shared.counters.open.load(Ordering::SeqCst);
        self.shared.state.send_modify(|s| s.resets += 1);
        open
    }

    /// No fault at all: nothing cut, no delay.
    pub fn heal(&self) {
        self.set_faults(LinkFaults::default());
    }

    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        LinkStats {
            accepted: c.accepted.load(Ordering::SeqCst),
            open: c.open.load(Ordering::SeqCst),
            bytes_client_to_target: c.to_target.load(Ordering::SeqCst),
            bytes_target_to_client: c.to_client.load(Ordering::SeqCst),
            dropped: c.dropped.load(Ordering::SeqCst),
            lost: c.lost.load(Ordering::SeqCst),
        }
    }
}

/// A running proxy for one link. Dropping it closes the listener and every
/// connection through it. Derefs to its [`LinkHandle`].
pub struct Proxy {
    addr: SocketAddr,
    handle: LinkHandle,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on a fresh loopback port, with jitter seeded by 0.
    pub async fn start(target: SocketAddr) -> io::Result<Proxy> {
        Proxy::start_seeded(target, 0).await
    }

    /// Same, with the jitter's random numbers drawn from `seed` (a connection's
    /// draws depend on the seed and the order in which connections arrived).
    pub async fn start_seeded(target: SocketAddr, seed: u64) -> io::Result<Proxy> {
        Proxy::start_on(std::net::Ipv4Addr::LOCALHOST.into(), target, seed).await
    }

    /// Same, listening on `bind` (e.g. the host end of a network namespace's
    /// veth pair, so processes in the namespace can reach it).
    pub async fn start_on(bind: std::net::IpAddr, target: SocketAddr, seed: u64) -> io::Result<Proxy> {
        let listener = TcpListener::bind(SocketAddr::new(bind, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            seed,
            state: watch::Sender::new(State::default()),
            counters: Counters::default(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy { addr, handle: LinkHandle { shared }, task })
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for Proxy {
    type Target = LinkHandle;
    fn deref(&self) -> &LinkHandle {
        &self.handle
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The connection tasks live in the accept loop's JoinSet: aborting
        // the loop drops the set, which aborts them and closes their sockets.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        n += 1;
        shared.counters.accepted.fetch_add(1, Ordering::SeqCst);
        conns.spawn(serve(client, shared.clone(), n));
    }
}

/// Resolves once `f` holds for the link state. If the state can no longer
/// change (the proxy is gone) it never resolves; the task is aborted anyway.
async fn until(rx: &mut watch::Receiver<State>, f: impl FnMut(&State) -> bool) {
    let changed = rx.wait_for(f).await.is_ok();
    if !changed {
        std::future::pending::<()>().await;
    }
}

struct OpenGuard<'a>(&'a Counters);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>, id: u64) {
    shared.counters.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(&shared.counters);
    let mut resets = shared.state.subscribe();
    let generation = resets.borrow().resets;
    let reset = |s: &State| s.resets != generation;
    let _ = client.set_nodelay(true);

    let mut gate = shared.state.subscribe();
    let connect = async {
        until(&mut gate, |s| s.faults.passes_both_ways()).await;
        TcpStream::connect(shared.target).await
    };
    let upstream = tokio::select! {
        r = connect => r.ok(),
        _ = until(&mut resets, reset) => None,
    };
    let Some(mut upstream) = upstream else {
        // Target down, or reset while waiting: the client gets an RST.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = upstream.set_nodelay(true);

    let clean = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let seed = shared.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let forward = pump(cr, uw, Direction::ClientToTarget, &shared, StdRng::seed_from_u64(seed));
        let backward = pump(ur, cw, Direction::TargetToClient, &shared, StdRng::seed_from_u64(!seed));
        tokio::select! {
            r = async { tokio::try_join!(forward, backward) } => r.is_ok(),
            _ = until(&mut resets, reset) => {
                shared.counters.dropped.fetch_add(1, Ordering::SeqCst);
                false
            }
        }
    };
    if !clean {
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

/// Copies `src` to `dst` under the direction's faults until `src` ends (then
/// passes the FIN on) or either side fails.
async fn pump(
    mut src: ReadHalf<'_>,
    mut dst: WriteHalf<'_>,
    dir: Direction,
    shared: &Shared,
    mut rng: StdRng,
) -> io::Result<()> {
    let passes = move |s: &State| !s.faults.get(dir).cut;
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let mut read_gate = shared.state.subscribe();
    let mut write_gate = shared.state.subscribe();

    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        // Losses in a row: each doubles the retransmission timeout.
        let mut losses: u32 = 0;
        loop {
            // While cut, do not read: the source's TCP window fills and it blocks.
            until(&mut read_gate, passes).await;
            let n = src.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), io::Error>(()); // drops tx: the writer drains, then FIN
            }
            let f = read_gate.borrow().faults.get(dir);
            let jitter = match u64::try_from(f.jitter.as_nanos()) {
                Ok(0) | Err(_) => Duration::ZERO,
                Ok(j) => Duration::from_nanos(rng.random_range(0..=j)),
            };
            // Drawn only while a loss is set, so a link without loss draws
            // exactly the numbers it drew before loss existed.
            let rto = if f.loss_permille > 0 && rng.random_range(0..1000) < f.loss_permille {
                losses += 1;
                shared.counters.lost.fetch_add(1, Ordering::SeqCst);
                MIN_RTO.saturating_mul(1 << (losses - 1).min(4)).min(MAX_RTO)
            } else {
                losses = 0;
                Duration::ZERO
            };
            let due = Instant::now() + f.delay + jitter + rto;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    };

    let writer = async move {
        let mut not_before = Instant::now();
        while let Some((due, chunk)) = rx.recv().await {
            // TCP keeps order: a chunk never overtakes the one ahead of it.
            not_before = not_before.max(due);
            tokio::time::sleep_until(not_before).await;
            // Bytes in flight when a cut starts are held until it lifts.
            until(&mut write_gate, passes).await;
            dst.write_all(&chunk).await?;
            let counter = match dir {
                Direction::ClientToTarget => &shared.counters.to_target,
                Direction::TargetToClient => &shared.counters.to_client,
            };
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        dst.shutdown().await
    };

    tokio::try_join!(reader, writer).map(|_| ())
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
