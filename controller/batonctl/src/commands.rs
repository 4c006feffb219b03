//! One function per verb: build the request, call it with failover, render.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use baton_proto::v1::{
    AddControllerRequest, CreateTopicRequest, DeleteTopicRequest, DescribeQuorumRequest, DescribeTopicRequest,
    DrainBrokerRequest, ElectLeadersRequest, ElectionType, GetPartitionLeaderRequest, ListBrokersRequest,
    ListTopicsRequest, ReadConsistency, RemoveControllerRequest, TopicConfig, TopicPartition, UndrainBrokerRequest,
    WatchLeadershipRequest,
};
use serde::Serialize;

use crate::cli::{BrokerCommand, Cli, Command, ElectionKind, LeaderCommand, OutputFormat, QuorumCommand, TopicCommand};
use crate::client::{ClientError, Controllers, Subject};
use crate::output;

/// The TLS material of this run: flags or `BATON_TLS__*` (the controller's
/// own variables), required unless `--plaintext`.
fn tls(cli: &Cli) -> anyhow::Result<Option<std::sync::Arc<baton_security::Tls>>> {
    let g = &cli.global;
    let config = baton_security::TlsConfig {
        plaintext: g.plaintext,
        ca_file: g.tls_ca.clone(),
        cert_file: g.tls_cert.clone(),
        key_file: g.tls_key.clone(),
        trust_domain: g.trust_domain.clone(),
        // One short run: no reloading.
        reload_interval_ms: 0,
    };
    baton_security::Tls::from_config(&config, "batonctl").context(
        "batonctl needs --tls-ca/--tls-cert/--tls-key (or BATON_TLS__CA_FILE/CERT_FILE/KEY_FILE), \
         or --plaintext for a cluster that runs without TLS",
    )
}

/// Consecutive rounds of failed reconnects before `leader watch` gives up.
const WATCH_MAX_FAILED_ROUNDS: u32 = 5;
/// Pause between reconnect rounds of `leader watch` (times the round number).
const WATCH_BACKOFF: Duration = Duration::from_millis(500);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // `certs` talks to no controller, so it needs no TLS of its own.
    let tls = if matches!(cli.command, Command::Certs(_)) { None } else { tls(&cli)? };
    let controllers = Controllers::new(cli.global.controllers.clone(), Duration::from_millis(cli.global.timeout_ms))
        .with_tls(tls.clone());
    let format = cli.global.output;
    match cli.command {
        Command::Certs(cmd) => crate::certs::run(cmd, &cli.global.trust_domain),
        Command::Topic(cmd) => topic(&controllers, format, cmd).await,
        Command::Leader(cmd) => leader(&controllers, format, cmd).await,
        Command::Broker(BrokerCommand::List) => broker_list(&controllers, format).await,
        Command::Broker(BrokerCommand::Drain { broker_id, force }) => {
            let req = DrainBrokerRequest { broker_id, force };
            let resp = controllers
                .call(|mut client| {
                    let req = controllers.unary(req);
                    async move { client.drain_broker(req).await }
                })
                .await?;
            let view = output::DrainJson {
                broker: broker_id,
                drained: true,
                moved: resp.moved,
                remaining: resp.remaining,
                metadata_version: resp.metadata_version,
            };
            emit(format, &view, || output::drain_table(&view))
        }
        Command::Broker(BrokerCommand::Undrain { broker_id }) => {
            let req = UndrainBrokerRequest { broker_id };
            let resp = controllers
                .call(|mut client| {
                    let req = controllers.unary(req);
                    async move { client.undrain_broker(req).await }
                })
                .await?;
            let view = output::UndrainJson {
                broker: broker_id,
                elected: resp.elected,
                metadata_version: resp.metadata_version,
            };
            emit(format, &view, || {
                format!("broker {broker_id} undrained; leads {} leaderless partitions again\n", resp.elected)
            })
        }
        Command::Reassign(cmd) => crate::reassign::run(&controllers, format, cmd).await,
        Command::Rebalance { max_moves, max_in_flight, wait_timeout_secs } => {
            let timeout = Duration::from_secs(wait_timeout_secs);
            crate::reassign::rebalance(&controllers, format, max_moves, max_in_flight, timeout).await
        }
        Command::Broker(BrokerCommand::Decommission { broker_id, max_in_flight, wait_timeout_secs }) => {
            let timeout = Duration::from_secs(wait_timeout_secs);
            crate::reassign::decommission(&controllers, format, broker_id, max_in_flight, timeout).await
        }
        Command::Quorum(QuorumCommand::Status) => quorum_status(&controllers, format).await,
        Command::Quorum(QuorumCommand::Add { id, address, learner_only, catch_up_timeout_ms }) => {
            // The call waits for the catch-up: give it that long and more.
            let timeout = Duration::from_millis(cli.global.timeout_ms.max(u64::from(catch_up_timeout_ms) + 30_000));
            let controllers = Controllers::new(cli.global.controllers.clone(), timeout).with_tls(tls.clone());
            let req = AddControllerRequest { id, address, learner_only, catch_up_timeout_ms };
            let resp = controllers
                .call(|mut client| {
                    let req = controllers.unary(req.clone());
                    async move { client.add_controller(req).await }
                })
                .await?;
            let quorum = resp.quorum.context("controller answered without the quorum")?;
            let view = output::quorum_json(&quorum);
            emit(format, &view, || output::quorum_table(&view))
        }
        Command::Quorum(QuorumCommand::Remove { id, force }) => {
            let req = RemoveControllerRequest { id, force };
            let resp = controllers
                .call(|mut client| {
                    let req = controllers.unary(req);
                    async move { client.remove_controller(req).await }
                })
                .await?;
            let quorum = resp.quorum.context("controller answered without the quorum")?;
            let view = output::quorum_json(&quorum);
            emit(format, &view, || output::quorum_table(&view))
        }
    }
}

fn consistency(linearizable: bool) -> i32 {
    if linearizable { ReadConsistency::Linearizable as i32 } else { ReadConsistency::Local as i32 }
}

async fn topic(c: &Controllers, format: OutputFormat, cmd: TopicCommand) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Create { name, partitions, replication_factor, unclean_leader_election } => {
            let req = CreateTopicRequest {
                name: name.clone(),
                partitions,
                replication_factor,
                config: Some(TopicConfig { unclean_leader_election }),
            };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req.clone());
                    async move { client.create_topic(req).await }
                })
                .await
                .map_err(|e| e.about(Subject::topic(&name)))?;
            let topic = resp.topic.context("controller answered without the created topic")?;
            let view = output::topic_json(&topic, resp.metadata_version);
            emit(format, &view, || output::topic_table(&view))
        }
        TopicCommand::Delete { name } => {
            let req = DeleteTopicRequest { name: name.clone() };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req.clone());
                    async move { client.delete_topic(req).await }
                })
                .await
                .map_err(|e| e.about(Subject::topic(&name)))?;
            let view = output::DeletedJson { deleted: name, metadata_version: resp.metadata_version };
            emit(format, &view, || output::deleted_table(&view))
        }
        TopicCommand::List { linearizable } => {
            let req = ListTopicsRequest { consistency: consistency(linearizable) };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req);
                    async move { client.list_topics(req).await }
                })
                .await?;
            let view = output::topic_list_json(&resp.topics);
            emit(format, &view, || output::topic_list_table(&view))
        }
        TopicCommand::Describe { name, linearizable } => {
            let req = DescribeTopicRequest { name: name.clone(), consistency: consistency(linearizable) };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req.clone());
                    async move { client.describe_topic(req).await }
                })
                .await
                .map_err(|e| e.about(Subject::topic(&name)))?;
            let topic = resp.topic.context("controller answered without the topic")?;
            let view = output::topic_json(&topic, resp.metadata_version);
            emit(format, &view, || output::topic_table(&view))
        }
    }
}

async fn leader(c: &Controllers, format: OutputFormat, cmd: LeaderCommand) -> anyhow::Result<()> {
    match cmd {
        LeaderCommand::Get { topic, partition, linearizable } => {
            let req =
                GetPartitionLeaderRequest { topic: topic.clone(), partition, consistency: consistency(linearizable) };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req.clone());
                    async move { client.get_partition_leader(req).await }
                })
                .await
                .map_err(|e| e.about(Subject::partition(&topic, partition)))?;
            let view = output::leader_json(&resp);
            emit(format, &view, || output::leader_table(&view))
        }
        LeaderCommand::Watch { from_version } => watch(c, format, from_version).await,
        LeaderCommand::Elect { election_type, topic, partition } => {
            elect(c, format, election_type, topic, partition).await
        }
    }
}

async fn elect(
    c: &Controllers,
    format: OutputFormat,
    kind: ElectionKind,
    topic: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<()> {
    let (election_type, type_name) = match kind {
        ElectionKind::Preferred => (ElectionType::Preferred, "preferred"),
        ElectionKind::Unclean => (ElectionType::Unclean, "unclean"),
    };
    // The API takes explicit partitions (empty = the whole cluster), so a
    // topic-wide election first asks for the topic's partition count.
    let partitions = match (&topic, partition) {
        (None, _) => Vec::new(),
        (Some(t), Some(p)) => vec![TopicPartition { topic: t.clone(), partition: p }],
        (Some(t), None) => {
            let req = DescribeTopicRequest { name: t.clone(), consistency: consistency(false) };
            let resp = c
                .call(|mut client| {
                    let req = c.unary(req.clone());
                    async move { client.describe_topic(req).await }
                })
                .await
                .map_err(|e| e.about(Subject::topic(t)))?;
            let described = resp.topic.context("controller answered without the topic")?;
            described.partitions.iter().map(|p| TopicPartition { topic: t.clone(), partition: p.partition }).collect()
        }
    };
    let subject = match (&topic, partition) {
        (Some(t), Some(p)) => Subject::partition(t, p),
        (Some(t), None) => Subject::topic(t),
        (None, _) => Subject::default(),
    };
    let req = ElectLeadersRequest { election_type: election_type as i32, partitions };
    let resp = c
        .call(|mut client| {
            let req = c.unary(req.clone());
            async move { client.elect_leaders(req).await }
        })
        .await
        .map_err(|e| e.about(subject))?;
    let view = output::election_json(type_name, &resp.results, resp.metadata_version);
    emit(format, &view, || output::election_table(&view))?;
    let failed = resp.results.iter().filter(|r| output::election_failed(r)).count();
    if failed > 0 {
        bail!("{type_name} leader election failed for {failed} of {} partitions", resp.results.len());
    }
    Ok(())
}

/// Streams leadership updates; on a broken stream resumes from the last
/// version seen, at the next controller. Ends at ctrl-c or a clean end of
/// stream; gives up after [`WATCH_MAX_FAILED_ROUNDS`] rounds in a row in which
/// no controller could be reached.
async fn watch(c: &Controllers, format: OutputFormat, from_version: u64) -> anyhow::Result<()> {
    let mut last_version = from_version;
    let mut start = 0usize;
    let mut failed_rounds = 0u32;
    let mut table = output::WatchTable::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let req = WatchLeadershipRequest { from_version: last_version };
        let opened = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            opened = c.call_from(start, |mut client| async move {
                // No grpc-timeout here: it would cut the stream itself.
                client.watch_leadership(req).await
            }) => opened,
        };
        let (mut stream, addr) = match opened {
            Ok(opened) => opened,
            Err(e @ ClientError::NoController { .. }) => {
                failed_rounds += 1;
                if failed_rounds >= WATCH_MAX_FAILED_ROUNDS {
                    return Err(e.into());
                }
                tokio::select! {
                    _ = &mut ctrl_c => return Ok(()),
                    _ = tokio::time::sleep(WATCH_BACKOFF * failed_rounds) => {}
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let next = tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                next = stream.message() => next,
            };
            match next {
                Ok(Some(update)) => {
                    failed_rounds = 0;
                    last_version = last_version.max(update.metadata_version);
                    let text = match format {
                        OutputFormat::Json => output::to_json_line(&output::watch_json(&update)),
                        OutputFormat::Table => table.lines(&update).join("\n"),
                    };
                    if text.is_empty() {
                        continue;
                    }
                    if !write_stdout(&format!("{text}\n"))? {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(status) => match crate::client::classify(&status) {
                    crate::client::Disposition::Final => {
                        return Err(ClientError::Rpc(crate::client::RpcError::from_status(&status)).into());
                    }
                    crate::client::Disposition::TryNext { .. } => {
                        // Resume elsewhere: the controller after the one that failed.
                        start = c.index_of(&addr).map_or(0, |i| (i + 1) % c.len().max(1));
                        break;
                    }
                },
            }
        }
    }
}

async fn broker_list(c: &Controllers, format: OutputFormat) -> anyhow::Result<()> {
    let resp = c
        .call(|mut client| {
            let req = c.unary(ListBrokersRequest {});
            async move { client.list_brokers(req).await }
        })
        .await?;
    let view = output::broker_list_json(&resp.brokers);
    emit(format, &view, || output::broker_list_table(&view))
}

async fn quorum_status(c: &Controllers, format: OutputFormat) -> anyhow::Result<()> {
    let resp = c
        .call(|mut client| {
            let req = c.unary(DescribeQuorumRequest {});
            async move { client.describe_quorum(req).await }
        })
        .await?;
    let view = output::quorum_json(&resp);
    emit(format, &view, || output::quorum_table(&view))
}

pub(crate) fn emit<T: Serialize>(format: OutputFormat, view: &T, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Json => format!("{}\n", output::to_json_line(view)),
        OutputFormat::Table => table(),
    };
    write_stdout(&text)?;
    Ok(())
}

/// Writes and flushes; `Ok(false)` when the reader went away (`| head`),
/// which ends the command quietly rather than as an error.
fn write_stdout(text: &str) -> anyhow::Result<bool> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing to stdout"),
    }
}
