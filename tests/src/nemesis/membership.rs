//! Controller membership changes while the schedule's faults run: a 4th
//! controller is started with `--join`, added to the quorum (learner,
//! catch-up, voter), kept for a while, removed and stopped; then again with
//! a fresh data dir, until told to stop, which leaves it removed. Every step
//! is a `nemesis` event in the history, and the checker's properties must
//! hold throughout.
//!
//! The 4th controller reaches the others at their real addresses (no fault
//! proxies on its links), and the schedule's faults target the first three:
//! the point is membership changes racing kills, pauses and cuts of the
//! others (an add whose leader is killed mid-way is retried, as an operator
//! would).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_proto::v1::controller_client::ControllerClient;
use baton_proto::v1::{AddControllerRequest, RemoveControllerRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;
use tonic::transport::Endpoint;

use super::clock::monotonic_ns;
use super::history::{Event, Recorder};
use crate::{Proc, free_port};

/// Raft id of the controller that comes and goes.
pub const CHURN_ID: u64 = 4;
/// Bound on one add (it waits for the catch-up) or remove attempt.
const ATTEMPT: Duration = Duration::from_secs(20);
/// Give up on one step after this long (the faults may hold the quorum down).
const STEP: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default)]
pub struct ChurnStats {
    pub added: u64,
    pub removed: u64,
    /// Steps that did not succeed within their bound.
    pub gave_up: u64,
}

fn record(rec: &Recorder, what: String) {
    eprintln!("nemesis: {what}");
    let _ = rec.record(&Event::Nemesis { t_ns: monotonic_ns(), what });
}

/// Tries every controller until one answers Ok or a definite error.
async fn admin<T, F, Fut>(addrs: &[String], mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut(ControllerClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last = tonic::Status::unavailable("no controller");
    for addr in addrs {
        let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else { continue };
        let Ok(channel) = endpoint.connect_timeout(Duration::from_millis(500)).timeout(ATTEMPT).connect().await else {
            continue;
        };
        match tokio::time::timeout(ATTEMPT, f(ControllerClient::new(channel))).await {
            Ok(Ok(r)) => return Ok(r.into_inner()),
            Ok(Err(s)) if matches!(s.code(), Code::NotFound | Code::AlreadyExists | Code::InvalidArgument) => {
                return Err(s);
            }
            Ok(Err(s)) => last = s,
            Err(_) => last = tonic::Status::deadline_exceeded(format!("{addr}: no answer")),
        }
    }
    Err(last)
}

async fn retry_step<F, Fut>(what: &str, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match attempt().await {
            Ok(()) => return true,
            Err(s) if tokio::time::Instant::now() >= deadline => {
                eprintln!("membership: {what} gave up: {s}");
                return false;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

async fn remove(addrs: &[String]) -> Result<(), tonic::Status> {
    remove_id(addrs, CHURN_ID).await
}

async fn remove_id(addrs: &[String], id: u64) -> Result<(), tonic::Status> {
    let req = RemoveControllerRequest { id, force: false };
    match admin(addrs, |mut c| async move { c.remove_controller(req).await }).await {
        Ok(_) => Ok(()),
        // Already gone (an earlier attempt went through): done.
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(s),
    }
}

/// Removes controller `id` from the quorum, retrying (through any
/// controller) for up to a minute; false if it never went through (e.g.
/// the others could not form a majority without it meanwhile).
pub async fn remove_controller(addrs: &[String], id: u64) -> bool {
    retry_step(&format!("remove controller-{id}"), || remove_id(addrs, id)).await
}

/// Adds controller `id` at `address` as a voter (learner, catch-up, voter),
/// retrying for up to a minute; false if it never went through.
pub async fn add_controller(addrs: &[String], id: u64, address: &str) -> bool {
    retry_step(&format!("add controller-{id}"), || {
        let req =
            AddControllerRequest { id, address: address.to_string(), learner_only: false, catch_up_timeout_ms: 15_000 };
        async move {
            admin(addrs, |mut c| {
                let req = req.clone();
                async move { c.add_controller(req).await }
            })
            .await
            .map(|_| ())
        }
    })
    .await
}

/// Adds and removes controller 4 in rounds until `stop`; returns what it did.
pub async fn churn(
    dir: PathBuf,
    addrs: Vec<String>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> ChurnStats {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6d65_6d62);
    let mut stats = ChurnStats::default();
    let mut round = 0;
    while !stop.load(Ordering::Acquire) {
        round += 1;
        let addr = format!("127.0.0.1:{}", free_port());
        let mut peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        peers.push(format!("{CHURN_ID}={addr}"));
        let data = dir.join(format!("controller-{CHURN_ID}-round-{round}"));
        let args = vec![
            "--id".into(),
            CHURN_ID.to_string(),
            "--data-dir".into(),
            data.to_string_lossy().into_owned(),
            "--listen".into(),
            addr.clone(),
            "--peers".into(),
            peers.join(","),
            "--join".into(),
        ];
        let log = dir.join(format!("controller-{CHURN_ID}-round-{round}.log"));
        let mut proc = Proc::spawn("baton-controller", args, Vec::new(), log);

        record(&rec, format!("membership: add controller-{CHURN_ID} at {addr} (round {round})"));
        let added = retry_step("add", || {
            let req = AddControllerRequest {
                id: CHURN_ID,
                address: addr.clone(),
                learner_only: false,
                catch_up_timeout_ms: 15_000,
            };
            let addrs = addrs.clone();
            async move {
                admin(&addrs, |mut c| {
                    let req = req.clone();
                    async move { c.add_controller(req).await }
                })
                .await
                .map(|_| ())
            }
        })
        .await;
        if added {
            stats.added += 1;
            record(&rec, format!("membership: controller-{CHURN_ID} is a voter (round {round})"));
        } else {
            stats.gave_up += 1;
        }
        let hold = Duration::from_millis(rng.random_range(1_500..=4_000));
        let held_until = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < held_until && !stop.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        record(&rec, format!("membership: remove controller-{CHURN_ID} (round {round})"));
        if retry_step("remove", || remove(&addrs)).await {
            stats.removed += 1;
        } else {
            stats.gave_up += 1;
        }
        proc.kill9();
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..=1_500))).await;
    }
    // Leave it removed whatever happened above (the faults are healed by now).
    if !retry_step("final remove", || remove(&addrs)).await {
        stats.gave_up += 1;
    }
    stats
}
