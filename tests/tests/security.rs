//! Security (docs/SECURITY.md): mTLS on every link, identities bound to
//! certificates, admin authorization, and limits that keep the cluster
//! serving under abuse. Real controller and agent processes on loopback; the
//! attackers are raw gRPC clients in this process.

use std::time::{Duration, Instant};

use baton_proto::v1::broker_session_client::BrokerSessionClient;
use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::v1::raft_client::RaftClient;
use baton_proto::v1::session_request::Kind as RequestKind;
use baton_proto::v1::session_response::Kind as ResponseKind;
use baton_proto::v1::{
    CreateTopicRequest, Heartbeat, ListTopicsRequest, RaftMessageBatch, RegisterBrokerRequest, ReplicaProgress,
    SessionRequest, TopicConfig,
};
use baton_security::{Connector, Expect};
use baton_tests::{Cluster, ClusterOptions, LONG, Pki, create_topic};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

/// A lazily connected channel to `addr` presenting `tls` (None: plaintext).
fn channel(addr: &str, tls: Option<std::sync::Arc<baton_security::Tls>>) -> Channel {
    Connector::new(tls, Expect::AnyController).lazy(Connector::endpoint(addr).expect("endpoint"))
}

fn baton_error(status: &tonic::Status) -> String {
    status.metadata().get(baton_proto::ERROR_METADATA_KEY).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// One call on each of the four services a controller serves; the codes.
async fn call_every_service(ch: Channel) -> [Result<(), tonic::Status>; 4] {
    let topics = ControllerClient::new(ch.clone()).list_topics(ListTopicsRequest::default()).await.map(|_| ());
    let register = BrokerSessionClient::new(ch.clone())
        .register_broker(RegisterBrokerRequest {
            broker_id: 1,
            incarnation_id: "intruder".into(),
            endpoint: "evil:9092".into(),
            rack: String::new(),
        })
        .await
        .map(|_| ());
    let batch = RaftMessageBatch { from: 2, messages: Vec::new() };
    let raft = RaftClient::new(ch.clone()).send(tokio_stream::iter(vec![batch])).await.map(|_| ());
    let health = tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .map(|_| ());
    [topics, register, raft, health]
}

/// The broker list as (id, epoch, state).
fn brokers(cluster: &Cluster) -> Vec<(i64, i64, String)> {
    let doc = cluster.brokers().expect("broker list");
    doc.as_array()
        .expect("array")
        .iter()
        .map(|b| (b["id"].as_i64().unwrap_or(-1), b["epoch"].as_i64().unwrap_or(-1), b["state"].to_string()))
        .collect()
}

/// With mTLS: a certificate from another CA is refused on every service; a
/// broker's certificate cannot speak for another broker nor send raft
/// messages; an admin's cannot send raft messages; a read-only client reads
/// but cannot write; and none of the attempts changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_strangers_and_binds_identities_to_certificates() {
    let cluster = Cluster::start(ClusterOptions { tls: true, ..ClusterOptions::default() }).await;
    let pki = cluster.pki.clone().expect("tls cluster");
    create_topic(&cluster, "orders", 3, 3);
    let before = brokers(&cluster);
    let addrs: Vec<String> = (0..3).map(|i| cluster.controller_addr(i).to_owned()).collect();

    // The right CA gets past the handshake on every service: any refusal is
    // an authorization decision, never a transport error.
    for addr in &addrs {
        let [topics, _, _, health] = call_every_service(channel(addr, Some(pki.tls("client-reader")))).await;
        topics.expect("a read-only client lists topics");
        health.expect("a read-only client checks health");
    }

    // Another CA, even with identically named identities: refused at the
    // handshake on every service, whoever the certificate claims to be.
    let other = Pki::init(&cluster.dir.path().join("other-pki"), 3, 3);
    for stem in ["admin-admin", "controller-2", "broker-1"] {
        for addr in &addrs {
            for (service, result) in ["Controller", "BrokerSession", "Raft", "Health"]
                .iter()
                .zip(call_every_service(channel(addr, Some(other.tls(stem)))).await)
            {
                let status = result.expect_err("a certificate from another CA must be refused");
                assert_eq!(status.code(), Code::Unavailable, "{stem} of another CA on {service} at {addr}: {status:?}");
            }
        }
    }
    // And so is a plaintext client.
    for (service, result) in
        ["Controller", "BrokerSession", "Raft", "Health"].iter().zip(call_every_service(channel(&addrs[0], None)).await)
    {
        assert!(result.is_err(), "plaintext on {service} must be refused");
    }
    assert!(cluster.log_of("controller-1").contains("TLS handshake refused"), "refusals are logged");
    let foreign_admin = {
        let env = other.batonctl_env("admin-admin");
        std::process::Command::new(baton_tests::bin_dir().join("batonctl"))
            .envs(env)
            .args(["--controllers", &cluster.controllers_flag(), "topic", "create", "stolen", "--partitions", "1"])
            .output()
            .expect("batonctl")
    };
    assert!(!foreign_admin.status.success(), "an admin of another CA cannot create topics");

    // Broker 2's certificate cannot register or heartbeat as broker 1, on any controller.
    let broker2 = pki.tls("broker-2");
    let mut refused_sessions = 0;
    let epoch1 = before.iter().find(|b| b.0 == 1).expect("broker 1").1 as u64;
    for addr in &addrs {
        let mut client = BrokerSessionClient::new(channel(addr, Some(broker2.clone())));
        let status = client
            .register_broker(RegisterBrokerRequest {
                broker_id: 1,
                incarnation_id: "impostor".into(),
                endpoint: "evil:9092".into(),
                rack: String::new(),
            })
            .await
            .expect_err("broker 2 registering as broker 1");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(baton_error(&status), "PERMISSION_DENIED");
        let heartbeat = Heartbeat { broker_id: 1, broker_epoch: epoch1, seq: 1, ..Heartbeat::default() };
        let first = SessionRequest { kind: Some(RequestKind::Heartbeat(heartbeat)) };
        match client.session(tokio_stream::iter(vec![first])).await {
            Err(s) if s.code() == Code::PermissionDenied => refused_sessions += 1,
            // Followers send agents to the leader before reading a heartbeat.
            Err(s) => assert!(
                s.metadata().get(baton_proto::LEADER_METADATA_KEY).is_some() || s.code() == Code::Unavailable,
                "{s:?}"
            ),
            Ok(_) => panic!("broker 2 opened a session as broker 1 at {addr}"),
        }
    }
    assert_eq!(refused_sessions, 1, "the leader refuses the session");
    // Its own id is fine: broker 2's certificate registers broker 2... but
    // that would bump its epoch; the running agent proves it already.

    // Broker and admin certificates cannot send raft messages; a controller's
    // cannot claim another controller's id.
    for (stem, from) in [("broker-1", 2), ("admin-admin", 2), ("client-reader", 2), ("controller-2", 3)] {
        for addr in &addrs {
            let batch = RaftMessageBatch { from, messages: Vec::new() };
            let status = RaftClient::new(channel(addr, Some(pki.tls(stem))))
                .send(tokio_stream::iter(vec![batch]))
                .await
                .expect_err("raft messages from a non-controller identity");
            assert_eq!(status.code(), Code::PermissionDenied, "{stem} as controller {from} at {addr}: {status:?}");
        }
    }

    // A read-only client cannot write.
    let status = ControllerClient::new(channel(&addrs[0], Some(pki.tls("client-reader"))))
        .create_topic(CreateTopicRequest {
            name: "sneaky".into(),
            partitions: 1,
            replication_factor: 1,
            config: Some(TopicConfig::default()),
        })
        .await
        .expect_err("a read-only client creating a topic");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(baton_error(&status), "PERMISSION_DENIED");

    // The sidecar's local API over TCP: its own broker identity (and
    // admins) only; it presents broker 1's certificate.
    let sidecar = |stem: &str, p: &Pki| {
        let connector = Connector::new(Some(p.tls(stem)), Expect::Principal(baton_security::Principal::Broker(1)));
        baton_proto::v1::agent_client::AgentClient::new(
            connector.lazy(Connector::endpoint(cluster.agent_addr(0)).expect("endpoint")),
        )
    };
    let status = sidecar("broker-1", &pki).status(baton_proto::v1::AgentStatusRequest {}).await.expect("own broker");
    assert_eq!(status.into_inner().broker_id, 1);
    let refused = sidecar("broker-2", &pki).status(baton_proto::v1::AgentStatusRequest {}).await.expect_err("broker 2");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = sidecar("admin-admin", &other).status(baton_proto::v1::AgentStatusRequest {}).await.expect_err("CA");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    // Nothing changed: the same brokers with the same epochs, still alive,
    // no topic but ours, and the quorum still answers.
    assert_eq!(brokers(&cluster), before, "an attempt changed broker state");
    let topics = cluster.batonctl_json(&["topic", "list"]).expect("topic list");
    assert_eq!(topics.as_array().map(Vec::len), Some(1), "{topics}");
    let logs: String = (1..=3).map(|i| cluster.log_of(&format!("controller-{i}"))).collect();
    assert!(logs.contains("a certificate speaking for another broker"), "impersonation is logged");
}

/// A hand-rolled broker session: register `id`, open a session on the
/// leader, hand back the sender and the response stream.
async fn open_session(
    cluster: &Cluster,
    id: i32,
) -> (u64, mpsc::Sender<SessionRequest>, tonic::Streaming<baton_proto::v1::SessionResponse>) {
    let addrs: Vec<String> = (0..3).map(|i| cluster.controller_addr(i).to_owned()).collect();
    let registered = BrokerSessionClient::new(channel(&addrs[0], None))
        .register_broker(RegisterBrokerRequest {
            broker_id: id,
            incarnation_id: format!("probe-{id}"),
            endpoint: format!("127.0.0.1:{}", 29000 + id),
            rack: String::new(),
        })
        .await
        .expect("register")
        .into_inner();
    let deadline = Instant::now() + LONG;
    loop {
        for addr in &addrs {
            let (tx, rx) = mpsc::channel(1024);
            let heartbeat = Heartbeat {
                broker_id: id,
                broker_epoch: registered.broker_epoch,
                seq: 1,
                metadata_version: registered.metadata_version,
                ..Heartbeat::default()
            };
            tx.send(SessionRequest { kind: Some(RequestKind::Heartbeat(heartbeat)) }).await.expect("queue");
            if let Ok(response) = BrokerSessionClient::new(channel(addr, None)).session(ReceiverStream::new(rx)).await {
                return (registered.broker_epoch, tx, response.into_inner());
            }
        }
        assert!(Instant::now() < deadline, "no controller opened a session for broker {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn heartbeat(id: i32, epoch: u64, seq: u64, progress: Vec<ReplicaProgress>) -> SessionRequest {
    SessionRequest {
        kind: Some(RequestKind::Heartbeat(Heartbeat {
            broker_id: id,
            broker_epoch: epoch,
            seq,
            progress,
            ..Heartbeat::default()
        })),
    }
}

/// The session's next error, skipping acks and updates.
async fn next_error(stream: &mut tonic::Streaming<baton_proto::v1::SessionResponse>) -> tonic::Status {
    let deadline = Instant::now() + LONG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await.expect("an error before the deadline") {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the session ended without an error"),
            Err(status) => return status,
        }
    }
}

/// Oversized messages, a session above the heartbeat rate or the report
/// bound, and a flood of connections and streams each meet their typed
/// bound, while the well-behaved brokers keep their leases and leadership
/// (and the heartbeat latency of a well-behaved session stays low).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_keep_the_cluster_serving_under_abuse() {
    let env = [
        ("BATON_LIMITS__MAX_CONNECTIONS", "64"),
        ("BATON_LIMITS__MAX_CONCURRENT_STREAMS", "16"),
        ("BATON_LIMITS__MAX_HEARTBEATS_PER_SECOND", "20"),
        ("BATON_LIMITS__MAX_PROGRESS_PER_HEARTBEAT", "1000"),
        ("BATON_LIMITS__MAX_REQUEST_BYTES", "1048576"),
    ];
    let controller_env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let cluster = Cluster::start(ClusterOptions { controller_env, ..ClusterOptions::default() }).await;
    let d = create_topic(&cluster, "orders", 6, 3);
    let leaders_before = baton_tests::leaders(&d);
    let before = brokers(&cluster);
    let addr = cluster.controller_addr(0).to_owned();

    // An oversized request: refused by the decoder, typed, nothing created.
    let status = ControllerClient::new(channel(&addr, None))
        .create_topic(CreateTopicRequest {
            name: "x".repeat(2 << 20),
            partitions: 1,
            replication_factor: 1,
            config: Some(TopicConfig::default()),
        })
        .await
        .expect_err("a 2 MiB request on a 1 MiB bound");
    assert!(matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted), "{status:?}");

    // A session sending more progress reports than the bound: INVALID_REQUEST.
    let (epoch, tx, mut responses) = open_session(&cluster, 7).await;
    let reports =
        (0..1001).map(|p| ReplicaProgress { topic: "orders".into(), partition: p, log_end_offset: 1 }).collect();
    tx.send(heartbeat(7, epoch, 2, reports)).await.expect("send");
    let status = next_error(&mut responses).await;
    assert_eq!(
        (status.code(), baton_error(&status).as_str()),
        (Code::InvalidArgument, "INVALID_REQUEST"),
        "{status:?}"
    );

    // A session heartbeating far above the rate bound: closed, RATE_LIMITED.
    let (epoch, tx, mut responses) = open_session(&cluster, 8).await;
    for seq in 2..400 {
        if tx.send(heartbeat(8, epoch, seq, Vec::new())).await.is_err() {
            break;
        }
    }
    let status = next_error(&mut responses).await;
    assert_eq!((status.code(), baton_error(&status).as_str()), (Code::ResourceExhausted, "RATE_LIMITED"), "{status:?}");

    // A well-behaved probe session, opened before the flood: its heartbeat
    // round trips are the figure for docs/BENCHMARKS.md.
    let (epoch, probe_tx, mut probe_rx) = open_session(&cluster, 9).await;
    let probe = tokio::spawn(async move {
        let mut rtts = Vec::new();
        let mut seq = 2;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            let sent = Instant::now();
            if probe_tx.send(heartbeat(9, epoch, seq, Vec::new())).await.is_err() {
                break;
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(5), probe_rx.message()).await {
                    Ok(Ok(Some(m))) => {
                        if let Some(ResponseKind::Ack(ack)) = m.kind
                            && ack.seq == seq
                        {
                            rtts.push(sent.elapsed());
                            break;
                        }
                    }
                    other => panic!("probe session broke: {other:?}"),
                }
            }
            seq += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rtts
    });

    // The flood, on every controller: connections held open far beyond the
    // bound, new ones churned, and more streams than a connection may carry.
    let flood_until = Instant::now() + Duration::from_secs(6);
    let mut flood = Vec::new();
    for i in 0..3 {
        let addr = cluster.controller_addr(i).to_owned();
        flood.push(tokio::spawn(async move {
            let mut held = Vec::new();
            let mut opened = 0usize;
            while Instant::now() < flood_until {
                if let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(&addr)).await
                {
                    opened += 1;
                    if held.len() < 300 {
                        held.push(s);
                    }
                }
                if opened.is_multiple_of(50) {
                    tokio::task::yield_now().await;
                }
            }
            opened
        }));
        let addr = cluster.controller_addr(i).to_owned();
        flood.push(tokio::spawn(async move {
            // Streams: 64 watches on one connection whose server allows 16.
            let ch = channel(&addr, None);
            let mut watches = Vec::new();
            for _ in 0..64 {
                let mut c = ControllerClient::new(ch.clone());
                watches.push(tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(6),
                        c.watch_leadership(baton_proto::v1::WatchLeadershipRequest::default()),
                    )
                    .await;
                }));
            }
            for w in watches {
                let _ = w.await;
            }
            0
        }));
    }
    // Meanwhile the real agents keep their leases.
    let mut min_lease = u64::MAX;
    while Instant::now() < flood_until {
        for i in 0..3 {
            if let Ok(s) = cluster.agent_status(i).await {
                assert!(s.connected, "agent {i} lost its session during the flood");
                min_lease = min_lease.min(s.lease_remaining_ms);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut opened = 0;
    for f in flood {
        opened += f.await.expect("flood task");
    }
    let rtts = probe.await.expect("probe");
    assert!(min_lease > 0, "an agent's lease ran out during the flood");
    assert!(rtts.len() >= 20, "the probe session was starved: {} heartbeats acked", rtts.len());
    let mut sorted = rtts.clone();
    sorted.sort();
    let p = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "flood: {opened} connections opened against limits.max_connections = 64 per controller; probe heartbeat \
         round trip over {} heartbeats: p50 {:?}, p99 {:?}, max {:?}; lowest agent lease left {min_lease} ms",
        sorted.len(),
        p(0.5),
        p(0.99),
        sorted[sorted.len() - 1]
    );
    assert!(opened > 64, "the flood never went past the bound ({opened} connections)");
    let metrics_refused =
        (0..3).any(|i| cluster.log_of(&format!("controller-{}", i + 1)).contains("connection limit reached"));
    assert!(metrics_refused, "no controller reported refusing connections over the bound");

    // After the flood: same brokers, same epochs, same leaders.
    let after: Vec<_> = brokers(&cluster).into_iter().filter(|b| b.0 <= 3).collect();
    let before: Vec<_> = before.into_iter().filter(|b| b.0 <= 3).collect();
    assert_eq!(after, before, "a well-behaved broker was fenced or re-registered");
    let d = cluster.describe("orders").expect("describe");
    assert_eq!(baton_tests::leaders(&d), leaders_before, "leadership moved during the flood");
}

/// Rotation without restarts (docs/SECURITY.md): the CA bundle grows to
/// trust a new CA, controller 1 gets a certificate from the new CA, and
/// within a few reload intervals it serves it: a client that trusts only the
/// new CA and presents a new-CA certificate gets in, while the rest of the
/// quorum, still on old certificates, keeps working with it, including over
/// links opened after the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_ca_rotate_without_a_restart() {
    let controller_env = vec![("BATON_TLS__RELOAD_INTERVAL_MS".to_owned(), "200".to_owned())];
    let mut cluster = Cluster::start(ClusterOptions { tls: true, controller_env, ..ClusterOptions::default() }).await;
    let pki = cluster.pki.clone().expect("tls cluster");
    let new = Pki::init(&cluster.dir.path().join("new-pki"), 3, 3);
    let addr = cluster.controller_addr(0).to_owned();
    let list = |tls| {
        let addr = addr.clone();
        async move { ControllerClient::new(channel(&addr, Some(tls))).list_topics(ListTopicsRequest::default()).await }
    };
    let status = list(new.tls("admin-admin")).await.expect_err("the new CA is not trusted yet");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // Step 1: every bundle trusts both CAs (the processes share one ca.pem here).
    let mut bundle = std::fs::read(pki.ca()).expect("old CA");
    bundle.extend(std::fs::read(new.ca()).expect("new CA"));
    let tmp = pki.dir.join("ca.pem.tmp");
    std::fs::write(&tmp, bundle).expect("write bundle");
    std::fs::rename(&tmp, pki.ca()).expect("rename bundle");
    // Step 2, for controller 1: a certificate from the new CA, same identity.
    let out = std::process::Command::new(baton_tests::bin_dir().join("batonctl"))
        .args(["certs", "issue", "--identity", "controller/1", "--force", "--dir"])
        .arg(&new.dir)
        .arg("--out")
        .arg(pki.dir.join("controller-1"))
        .output()
        .expect("batonctl certs issue");
    assert!(out.status.success(), "certs issue: {}", String::from_utf8_lossy(&out.stderr));

    // A client trusting ONLY the new CA accepts only the new server
    // certificate: it gets in once controller 1 has reloaded both files.
    let new_admin = new.tls("admin-admin");
    baton_tests::wait_for("controller 1 to serve its new certificate", LONG, async || {
        list(new_admin.clone()).await.ok()
    })
    .await;
    assert!(cluster.log_of("controller-1").contains("TLS certificate, key or CA reloaded"));

    // Links opened after the rotation: controller 2 restarts and must talk
    // raft with controller 1 (new certificate) and 3 (old) again.
    cluster.kill_controller(1);
    cluster.restart_controller(1);
    cluster.wait_for_quorum(LONG).await;
    cluster
        .wait_until("the topic created after the rotation", LONG, || {
            let out = cluster.batonctl(&[
                "topic",
                "create",
                "after-rotation",
                "--partitions",
                "3",
                "--replication-factor",
                "3",
            ]);
            if !out.status.success() {
                eprintln!("topic create: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            out.status.success().then_some(())
        })
        .await;
    let addr2 = cluster.controller_addr(1).to_owned();
    cluster
        .wait_until("controller 2 to apply the new topic", LONG, || {
            let d = cluster.batonctl_json_at(&addr2, &["topic", "describe", "after-rotation"]).ok()?;
            (d["partitions"].as_array()?.len() == 3).then_some(())
        })
        .await;
    let alive = brokers(&cluster).iter().filter(|b| b.2 == "\"ALIVE\"").count();
    assert_eq!(alive, 3, "every agent kept its session through the rotation");
}
