//! `batonctl reassign start|cancel|list`: partition reassignments, with a
//! progress display while waiting for one to complete.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use baton_proto::v1::{
    AlterPartitionReassignmentsRequest, ErrorCode, ListPartitionReassignmentsRequest, OngoingReassignment,
    PartitionReassignment, ReadConsistency,
};
use serde::Serialize;

use crate::cli::{OutputFormat, ReassignCommand};
use crate::client::{Controllers, Subject};
use crate::commands::emit;
use crate::output::Table;

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
