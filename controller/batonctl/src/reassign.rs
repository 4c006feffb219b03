//! `batonctl reassign start|cancel|list`, `broker decommission` and
//! `rebalance`: partition reassignments, planned (`plan`) and run throttled,
//! with a progress display while they complete.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use baton_proto::v1::{
    AlterPartitionReassignmentsRequest, BrokerState, DescribeTopicRequest, DrainBrokerRequest, ElectLeadersRequest,
    ElectionType, ErrorCode, ListBrokersRequest, ListPartitionReassignmentsRequest, ListTopicsRequest,
    OngoingReassignment, PartitionReassignment, ReadConsistency,
};
use serde::Serialize;

use crate::cli::{OutputFormat, ReassignCommand};
use crate::client::{Controllers, Subject};
use crate::commands::emit;
use crate::output::Table;
use crate::plan::{self, Move, PartitionLayout};

/// How often `--wait` polls the controllers.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Serialize)]
struct ResultJson {
    topic: String,
    partition: i32,
    /// STARTED, COMPLETED or CANCELLED.
    state: String,
    metadata_version: u64,
}

#[derive(Debug, Serialize)]
struct OngoingJson {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    target_replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

impl From<&OngoingReassignment> for OngoingJson {
    fn from(r: &OngoingReassignment) -> Self {
        OngoingJson {
            topic: r.topic.clone(),
            partition: r.partition,
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            target_replicas: r.target_replicas.clone(),
            adding: r.adding.clone(),
            removing: r.removing.clone(),
        }
    }
}

fn ids(v: &[i32]) -> String {
    if v.is_empty() { "-".to_owned() } else { v.iter().map(i32::to_string).collect::<Vec<_>>().join(",") }
}

fn ongoing_table(list: &[OngoingJson]) -> String {
    let mut t = Table::new(vec!["TOPIC", "PARTITION", "TARGET", "ADDING", "REMOVING", "ISR"]);
    for r in list {
        t.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            ids(&r.target_replicas),
            ids(&r.adding),
            ids(&r.removing),
            ids(&r.isr),
        ]);
    }
    t.render()
}

pub async fn run(c: &Controllers, format: OutputFormat, cmd: ReassignCommand) -> anyhow::Result<()> {
    match cmd {
        ReassignCommand::Start { topic, partition, replicas, wait, wait_timeout_secs } => {
            let item = PartitionReassignment { topic, partition, target_replicas: replicas, cancel: false };
            let mut view = alter(c, item).await?;
            if wait && view.state == "STARTED" {
                wait_done(c, &view.topic, view.partition, format, Duration::from_secs(wait_timeout_secs)).await?;
                view.state = "COMPLETED".to_owned();
            }
            emit(format, &view, || format!("{}-{}: {}\n", view.topic, view.partition, view.state))
        }
        ReassignCommand::Cancel { topic, partition } => {
            let item = PartitionReassignment { topic, partition, target_replicas: Vec::new(), cancel: true };
            let view = alter(c, item).await?;
            emit(format, &view, || format!("{}-{}: {}\n", view.topic, view.partition, view.state))
        }
        ReassignCommand::List => {
            let list: Vec<OngoingJson> = list(c).await?.iter().map(OngoingJson::from).collect();
            emit(format, &list, || ongoing_table(&list))
        }
    }
}

async fn alter(c: &Controllers, item: PartitionReassignment) -> anyhow::Result<ResultJson> {
    let subject = Subject::partition(&item.topic, item.partition);
    let req = AlterPartitionReassignmentsRequest { reassignments: vec![item] };
    let resp = c
        .call(|mut client| {
            let req = c.unary(req.clone());
            async move { client.alter_partition_reassignments(req).await }
        })
        .await
        .map_err(|e| e.about(subject))?;
    let Some(r) = resp.results.into_iter().next() else { bail!("controller answered without a result") };
    if r.error != ErrorCode::Unspecified as i32 {
        let code = ErrorCode::try_from(r.error).map_or_else(
            |_| format!("UNKNOWN({})", r.error),
            |c| c.as_str_name().trim_start_matches("ERROR_CODE_").to_owned(),
        );
        bail!("{}-{}: {} ({code})", r.topic, r.partition, r.message);
    }
    Ok(ResultJson { topic: r.topic, partition: r.partition, state: r.state, metadata_version: resp.metadata_version })
}

async fn list(c: &Controllers) -> anyhow::Result<Vec<OngoingReassignment>> {
    let req = ListPartitionReassignmentsRequest { consistency: ReadConsistency::Linearizable as i32 };
    let resp = c
        .call(|mut client| {
            let req = c.unary(req);
            async move { client.list_partition_reassignments(req).await }
        })
        .await?;
    Ok(resp.reassignments)
}

/// Polls until the partition has no reassignment in flight; in table mode
/// prints a progress line on stderr whenever it changes.
async fn wait_done(
    c: &Controllers,
    topic: &str,
    partition: i32,
    format: OutputFormat,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let ongoing = list(c).await?;
        let Some(r) = ongoing.iter().find(|r| r.topic == topic && r.partition == partition) else {
            if matches!(format, OutputFormat::Table) {
                eprintln!("{topic}-{partition}: done after {:.1} s", started.elapsed().as_secs_f64());
            }
            return Ok(());
        };
        let line = format!(
            "{topic}-{partition}: {}/{} target replicas in sync (catching up: {}; leaving: {})",
            r.target_replicas.len() - r.adding.len(),
            r.target_replicas.len(),
            ids(&r.adding),
            ids(&r.removing)
        );
        if line != last && matches!(format, OutputFormat::Table) {
            let _ = writeln!(io::stderr(), "{line}");
            last = line;
        }
        if started.elapsed() > timeout {
            bail!("{topic}-{partition}: still reassigning after {} s ({last})", timeout.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The cluster as the planner needs it: every broker's rack and state, and
/// every partition's replicas.
struct Snapshot {
    racks: BTreeMap<i32, String>,
    alive: BTreeMap<i32, String>,
    partitions: Vec<PartitionLayout>,
}

async fn snapshot(c: &Controllers) -> anyhow::Result<Snapshot> {
    let brokers = c
        .call(|mut client| {
            let req = c.unary(ListBrokersRequest {});
            async move { client.list_brokers(req).await }
        })
        .await?
        .brokers;
    let racks = brokers.iter().map(|b| (b.id, b.rack.clone())).collect();
    let alive =
        brokers.iter().filter(|b| b.state == BrokerState::Alive as i32).map(|b| (b.id, b.rack.clone())).collect();
    let consistency = ReadConsistency::Linearizable as i32;
    let topics = c
        .call(|mut client| {
            let req = c.unary(ListTopicsRequest { consistency });
            async move { client.list_topics(req).await }
        })
        .await?
        .topics;
    let mut partitions = Vec::new();
    for t in topics {
        let described = c
            .call(|mut client| {
                let req = c.unary(DescribeTopicRequest { name: t.name.clone(), consistency });
                async move { client.describe_topic(req).await }
            })
            .await?;
        for p in described.topic.map(|t| t.partitions).unwrap_or_default() {
            partitions.push(PartitionLayout { topic: p.topic, partition: p.partition, replicas: p.replicas });
        }
    }
    Ok(Snapshot { racks, alive, partitions })
}

#[derive(Debug, Serialize)]
struct MoveJson {
    topic: String,
    partition: i32,
    from: i32,
    to: i32,
}

/// Runs planned moves with at most `max_in_flight` reassignments at a time,
/// printing progress on stderr in table mode. Returns how many completed.
async fn execute(
    c: &Controllers,
    moves: &[Move],
    max_in_flight: usize,
    format: OutputFormat,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut next = 0;
    let mut last = String::new();
    loop {
        let ongoing = list(c).await?;
        let mine =
            |r: &OngoingReassignment| moves[..next].iter().any(|m| m.topic == r.topic && m.partition == r.partition);
        let in_flight = ongoing.iter().filter(|r| mine(r)).count();
        let done = next - in_flight;
        let line = format!("{done}/{} partitions moved, {in_flight} in flight", moves.len());
        if line != last && matches!(format, OutputFormat::Table) {
            let _ = writeln!(io::stderr(), "{line}");
            last = line;
        }
        if done == moves.len() {
            return Ok(done);
        }
        let room = max_in_flight.saturating_sub(in_flight).min(moves.len() - next);
        if room > 0 {
            let batch: Vec<PartitionReassignment> = moves[next..next + room]
                .iter()
                .map(|m| PartitionReassignment {
                    topic: m.topic.clone(),
                    partition: m.partition,
                    target_replicas: m.target.clone(),
                    cancel: false,
                })
                .collect();
            let req = AlterPartitionReassignmentsRequest { reassignments: batch };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req.clone());
                    async move { client.alter_partition_reassignments(req).await }
                })
                .await?;
            if let Some(r) = resp.results.iter().find(|r| r.error != ErrorCode::Unspecified as i32) {
                bail!(
                    "{}-{}: {} (moved {done} of {} so far; run again to resume)",
                    r.topic,
                    r.partition,
                    r.message,
                    moves.len()
                );
            }
            next += room;
            continue;
        }
        if started.elapsed() > timeout {
            bail!("{last} after {} s; the reassignments in flight go on (run again to resume)", timeout.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Debug, Serialize)]
struct DecommissionJson {
    broker: i32,
    /// Partitions whose replica on the broker moved elsewhere.
    moved: usize,
    /// Partitions that could not move (no eligible broker without a replica).
    stuck: Vec<String>,
    moves: Vec<MoveJson>,
}

/// `broker decommission ID`: drain it, then move every replica off it
/// (throttled reassignments), so it can be stopped for good. Resumable: a
/// second run plans from what is left.
pub async fn decommission(
    c: &Controllers,
    format: OutputFormat,
    broker: i32,
    max_in_flight: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    // Leadership first, so clients see handoffs, not replica moves, first.
    let drained = c
        .call(|mut client| {
            let req = c.unary(DrainBrokerRequest { broker_id: broker, force: true });
            async move { client.drain_broker(req).await }
        })
        .await?;
    if matches!(format, OutputFormat::Table) {
        eprintln!(
            "broker {broker} drained: {} leaderships moved, {} kept (no other in-sync replica)",
            drained.moved, drained.remaining
        );
    }
    let snap = snapshot(c).await?;
    let mut eligible = snap.alive.clone();
    eligible.remove(&broker);
    let cluster = plan::Cluster { eligible: &eligible, racks: &snap.racks, partitions: &snap.partitions };
    let (moves, stuck) = plan::decommission(&cluster, broker);
    let moved = execute(c, &moves, max_in_flight.max(1), format, timeout).await?;
    let view = DecommissionJson {
        broker,
        moved,
        stuck: stuck.iter().map(|p| format!("{}-{}", p.topic, p.partition)).collect(),
        moves: moves
            .iter()
            .map(|m| MoveJson { topic: m.topic.clone(), partition: m.partition, from: m.from, to: m.to })
            .collect(),
    };
    emit(format, &view, || {
        let mut out = format!("broker {broker}: {} replicas moved off", view.moved);
        if !view.stuck.is_empty() {
            out.push_str(&format!(
                "; {} could not move (no free eligible broker): {}",
                view.stuck.len(),
                view.stuck.join(", ")
            ));
        }
        out.push('\n');
        out
    })
}

#[derive(Debug, Serialize)]
struct RebalanceJson {
    moved: usize,
    moves: Vec<MoveJson>,
    /// Partitions whose leadership moved to its preferred replica afterwards.
    leaders_moved: usize,
}

/// `rebalance`: spread replicas evenly (by count, rack-aware) over the
/// alive, undrained brokers, then give leadership to preferred replicas.
pub async fn rebalance(
    c: &Controllers,
    format: OutputFormat,
    max_moves: usize,
    max_in_flight: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let snap = snapshot(c).await?;
    let cluster = plan::Cluster { eligible: &snap.alive, racks: &snap.racks, partitions: &snap.partitions };
    let moves = plan::rebalance(&cluster, max_moves);
    let moved = execute(c, &moves, max_in_flight.max(1), format, timeout).await?;
    let elected = c
        .call(|mut client| {
            let req =
                c.unary(ElectLeadersRequest { election_type: ElectionType::Preferred as i32, partitions: vec![] });
            async move { client.elect_leaders(req).await }
        })
        .await?;
    let leaders_moved = elected.results.iter().filter(|r| r.error == ErrorCode::Unspecified as i32).count();
    let view = RebalanceJson {
        moved,
        moves: moves
            .iter()
            .map(|m| MoveJson { topic: m.topic.clone(), partition: m.partition, from: m.from, to: m.to })
            .collect(),
        leaders_moved,
    };
    emit(format, &view, || {
        format!("{} replicas moved; {} leaderships moved to preferred replicas\n", view.moved, view.leaders_moved)
    })
}
