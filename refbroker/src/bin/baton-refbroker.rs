//! `baton-refbroker`: parses flags, sets up tracing, binds the Kafka
//! listener and calls [`baton_refbroker::run`]. SIGINT/SIGTERM shut it down
//! cleanly (the agent tells the controller first).

use std::time::Duration;

use anyhow::Context;
use baton_refbroker::{BrokerConfig, DEFAULT_MAX_LOG_BYTES};
use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(name = "baton-refbroker", about = "A reference Kafka-protocol broker embedding the Baton agent")]
struct Flags {
    #[arg(long)]
    broker_id: i32,
    /// Controller addresses, comma-separated host:port.
    #[arg(long)]
    controllers: String,
    /// Where the Kafka listener binds, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,
    /// host:port clients reach the Kafka listener at (registered with the
    /// controllers; Metadata and NOT_LEADER hints name it). Defaults to the
    /// bound listen address.
    #[arg(long)]
    advertised: Option<String>,
    #[arg(long, default_value = "")]
    rack: String,
    /// Bound on each partition's in-memory log, in MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_LOG_BYTES >> 20)]
    max_log_mib: usize,
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// Longest wait of a follower's fetch at the leader.
    #[arg(long, default_value_t = 500)]
    replica_fetch_wait_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(run(flags))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&flags.listen).await.with_context(|| format!("binding {}", flags.listen))?;
    let advertised = match flags.advertised {
        Some(a) => a,
        None => listener.local_addr().context("listener address")?.to_string(),
    };
    let controllers = flags.controllers.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    let mut config = BrokerConfig::new(flags.broker_id, controllers, advertised);
    config.rack = flags.rack;
    config.max_log_bytes = flags.max_log_mib.max(1) << 20;
    config.heartbeat_interval = flags.heartbeat_interval_ms.map(Duration::from_millis);
    config.replica_fetch_wait = Duration::from_millis(flags.replica_fetch_wait_ms);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        stop.send_replace(true);
    });
    baton_refbroker::run(config, listener, shutdown).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
