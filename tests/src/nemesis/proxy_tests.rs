//! Loopback tests of the fault proxy: each test holds both ends of one
//! connection (the client through the proxy, and the target's accepted
//! socket), so each direction can be watched on its own.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::*;

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// How long something that should arrive may take on a busy 2-core machine.
const SOON: Duration = Duration::from_secs(10);

/// A target that hands every accepted socket to the test.
struct Target {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<TcpStream>,
}

async fn target() -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
    let addr = listener.local_addr().expect("target addr");
    let (tx, accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    Target { addr, accepted }
}

/// A connection through `proxy`: (client end, target end).
async fn pair(proxy: &Proxy, target: &mut Target) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(proxy.addr()).await.expect("connect to proxy");
    let server = timeout(SOON, target.accepted.recv()).await.expect("target accepted").expect("target open");
    (client, server)
}

async fn setup() -> (Proxy, Target, TcpStream, TcpStream) {
    let mut t = target().await;
    let proxy = Proxy::start(t.addr).await.expect("start proxy");
    let (c, s) = pair(&proxy, &mut t).await;
    (proxy, t, c, s)
}

/// Reads exactly `n` bytes, or fails the test after SOON.
async fn recv(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(SOON, s.read_exact(&mut buf)).await.expect("bytes arrive in time").expect("read");
    buf
}

/// True when nothing (not even EOF or an error) arrives for QUIET: the
/// socket is open and silent.
async fn silent(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    timeout(QUIET, s.read(&mut buf)).await.is_err()
}

async fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).await.expect("write");
}

/// Closed by the other side: EOF or a reset, soon.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(timeout(SOON, s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn pass_forwards_both_ways() {
    let (proxy, _t, mut c, mut s) = setup().await;
    send(&mut c, b"ping").await;
    assert_eq!(recv(&mut s, 4).await, b"ping");
    send(&mut s, b"pong").await;
    assert_eq!(recv(&mut c, 4).await, b"pong");
    let st = proxy.stats();
    assert_eq!((st.accepted, st.open, st.bytes_client_to_target, st.bytes_target_to_client), (1, 1, 4, 4));
    // A FIN is passed on as a FIN.
    c.shutdown().await.expect("shutdown");
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn cut_blackholes_both_ways_without_closing_then_heal_delivers() {
    let (proxy, _t, mut c, mut s) = setup().await;
    proxy.cut();
    send(&mut c, b"request").await;
    send(&mut s, b"answer").await;
    // Nothing arrives, and neither side sees EOF or a reset.
    assert!(silent(&mut s).await, "bytes crossed a cut a->b");
    assert!(silent(&mut c).await, "bytes crossed a cut b->a");
    assert_eq!(proxy.stats().open, 1, "the cut closed the connection");
    assert_eq!(proxy.stats().bytes_client_to_target + proxy.stats().bytes_target_to_client, 0);
    // Heal: the same connection carries what was sent during the cut, and more.
    proxy.heal();
    assert_eq!(recv(&mut s, 7).await, b"request");
    assert_eq!(recv(&mut c, 6).await, b"answer");
    send(&mut c, b"more").await;
    assert_eq!(recv(&mut s, 4).await, b"more");
}

#[tokio::test]
async fn one_way_cut_client_to_target() {
    let (proxy, _t, mut c, mut s) = setup().await;
    proxy.cut_one_way(Direction::ClientToTarget);
    send(&mut c, b"lost?").await;
    send(&mut s, b"flows").await;
    assert_eq!(recv(&mut c, 5).await, b"flows");
    assert!(silent(&mut s).await, "a->b flowed through a one-way cut");
    proxy.pass();
    assert_eq!(recv(&mut s, 5).await, b"lost?");
}

#[tokio::test]
async fn one_way_cut_target_to_client() {
    let (proxy, _t, mut c, mut s) = setup().await;
    proxy.cut_one_way(Direction::TargetToClient);
    send(&mut c, b"flows").await;
    send(&mut s, b"lost?").await;
    assert_eq!(recv(&mut s, 5).await, b"flows");
    assert!(silent(&mut c).await, "b->a flowed through a one-way cut");
    proxy.heal();
    assert_eq!(recv(&mut c, 5).await, b"lost?");
}

#[tokio::test]
async fn delay_is_at_least_the_fixed_part_per_direction() {
    let (proxy, _t, mut c, mut s) = setup().await;
    let there = Duration::from_millis(300);
    let back = Duration::from_millis(80);
    proxy.delay(Direction::ClientToTarget, there, Duration::from_millis(40));
    proxy.delay(Direction::TargetToClient, back, Duration::ZERO);

    let t0 = Instant::now();
    send(&mut c, b"x").await;
    recv(&mut s, 1).await;
    let one_way = t0.elapsed();
    assert!(one_way >= there, "a->b took {one_way:?} < {there:?}");

    let t1 = Instant::now();
    send(&mut s, b"y").await;
    recv(&mut c, 1).await;
    let other = t1.elapsed();
    assert!(other >= back, "b->a took {other:?} < {back:?}");

    // Heal removes the delay.
    proxy.heal();
    let t2 = Instant::now();
    send(&mut c, b"z").await;
    recv(&mut s, 1).await;
    assert!(t2.elapsed() < there, "delay survived heal: {:?}", t2.elapsed());
}

#[tokio::test]
async fn jitter_keeps_byte_order() {
    let (proxy, _t, mut c, mut s) = setup().await;
    proxy.delay(Direction::ClientToTarget, Duration::from_millis(1), Duration::from_millis(20));
    let mut sent = Vec::new();
    for i in 0u32..200 {
        let msg = i.to_be_bytes();
        sent.extend_from_slice(&msg);
        send(&mut c, &msg).await;
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(recv(&mut s, sent.len()).await, sent);
}

#[tokio::test]
async fn drop_connections_resets_both_sides_and_new_ones_work() {
    let (proxy, mut t, mut c, mut s) = setup().await;
    assert_eq!(proxy.drop_connections(), 1);
    assert!(closed(&mut c).await, "client side still open after a drop");
    assert!(closed(&mut s).await, "target side still open after a drop");
    let (mut c2, mut s2) = pair(&proxy, &mut t).await;
    send(&mut c2, b"again").await;
    assert_eq!(recv(&mut s2, 5).await, b"again");
    assert_eq!(proxy.stats().dropped, 1);
}

#[tokio::test]
async fn a_connection_opened_during_a_cut_reaches_the_target_only_after_heal() {
    let mut t = target().await;
    let proxy = Proxy::start(t.addr).await.expect("start proxy");
    proxy.cut();
    let mut c = TcpStream::connect(proxy.addr()).await.expect("kernel accepts");
    send(&mut c, b"hello").await;
    assert!(timeout(QUIET, t.accepted.recv()).await.is_err(), "the target saw a connection across a cut");
    proxy.heal();
    let mut s = timeout(SOON, t.accepted.recv()).await.expect("accepted after heal").expect("open");
    assert_eq!(recv(&mut s, 5).await, b"hello");
}

#[tokio::test]
async fn target_down_resets_the_client() {
    let port = crate::free_port();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("start proxy");
    let mut c = TcpStream::connect(proxy.addr()).await.expect("kernel accepts");
    assert!(closed(&mut c).await);
}

/// While cut, the proxy reads no more than its bounded buffers: the sender
/// blocks on TCP backpressure instead of the proxy growing without bound.
#[tokio::test]
async fn cut_applies_backpressure_and_loses_nothing() {
    let (proxy, _t, mut c, mut s) = setup().await;
    proxy.cut_one_way(Direction::ClientToTarget);
    const TOTAL: usize = 48 << 20;
    let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        c.write_all(&data).await.expect("write");
        c
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!writer.is_finished(), "48 MiB were swallowed by a cut link: buffering is unbounded");
    assert_eq!(proxy.stats().bytes_client_to_target, 0);
    assert!(silent(&mut s).await);
    proxy.heal();
    let got = timeout(Duration::from_secs(60), async {
        let mut got = vec![0u8; TOTAL];
        s.read_exact(&mut got).await.expect("read all");
        got
    })
    .await
    .expect("all bytes after heal");
    assert!(got == expected, "bytes lost or reordered across cut and heal");
    let _c = timeout(SOON, writer).await.expect("writer done").expect("writer task");
    assert_eq!(proxy.stats().bytes_client_to_target, TOTAL as u64);
}

#[tokio::test]
async fn handle_is_shared_across_threads() {
    let (proxy, _t, mut c, mut s) = setup().await;
    let h = proxy.handle();
    std::thread::spawn(move || h.cut()).join().expect("control thread");
    assert!(proxy.faults().client_to_target.cut && proxy.faults().target_to_client.cut);
    send(&mut c, b"q").await;
    assert!(silent(&mut s).await);
    proxy.heal();
    assert_eq!(recv(&mut s, 1).await, b"q");
}

/// Loss holds chunks for a retransmission timeout: every byte arrives, in
/// order, nothing is duplicated, some chunks were held (counted), a lost
/// chunk took at least MIN_RTO, and the other direction is untouched.
#[tokio::test]
async fn loss_retransmits_late_in_order_and_loses_nothing() {
    let (proxy, _t, mut c, mut s) = setup().await;
    proxy.loss(Direction::ClientToTarget, 1000);
    // Every chunk lost: one message takes at least one RTO.
    let t0 = Instant::now();
    send(&mut c, b"first").await;
    assert_eq!(recv(&mut s, 5).await, b"first");
    assert!(t0.elapsed() >= MIN_RTO, "a lost chunk arrived after {:?} < {MIN_RTO:?}", t0.elapsed());
    // b->a has no loss.
    let t1 = Instant::now();
    send(&mut s, b"back").await;
    assert_eq!(recv(&mut c, 4).await, b"back");
    assert!(t1.elapsed() < MIN_RTO, "the other direction was held {:?}", t1.elapsed());

    proxy.loss(Direction::ClientToTarget, 300);
    let mut sent = Vec::new();
    for i in 0u32..40 {
        let msg = i.to_be_bytes();
        sent.extend_from_slice(&msg);
        send(&mut c, &msg).await;
        // Separate chunks, so each one is drawn.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let mut buf = [0u8; 256];
        let n = timeout(SOON, s.read(&mut buf)).await.expect("bytes arrive in time").expect("read");
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, sent, "loss reordered, duplicated or dropped bytes");
    assert!(proxy.stats().lost >= 2, "no chunk was held: {:?}", proxy.stats());
    proxy.heal();
    assert_eq!(proxy.faults(), LinkFaults::default());
}
