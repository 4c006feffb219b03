//! `baton-controller`: parse flags and configuration, set up tracing, bind the
//! listener and hand over to [`baton_controller::run`].

use std::path::PathBuf;

use anyhow::Context;
use baton_controller::config::{ControllerConfig, Overrides};
use clap::Parser;

/// jemalloc instead of glibc's malloc: a mass election allocates and frees
/// hundreds of thousands of small records at once, and glibc spent about half
/// of that in page faults and chunk consolidation (docs/BENCHMARKS.md,
/// "Bottlenecks found" 5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "baton-controller",
    version,
    about = "Baton controller: a raft-replicated control plane for Kafka-style brokers"
)]
struct Args {
    /// TOML configuration file (overridden by BATON_* env vars, then by flags).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Raft id of this controller (>= 1).
    #[arg(long)]
    id: Option<u64>,
    /// Folder for the raft log and snapshots.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve every gRPC service on, e.g. 127.0.0.1:7101.
    #[arg(long)]
    listen: Option<String>,
    /// The initial quorum: 1=host:port,2=host:port,3=host:port.
    #[arg(long)]
    peers: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Join an existing quorum (after `batonctl quorum add ID ADDR`) instead
    /// of bootstrapping a new one from --peers. Only matters on an empty data dir.
    #[arg(long)]
    join: bool,
    /// PEM CA bundle trusted for every peer (sets tls.ca_file).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// PEM certificate naming spiffe://<trust-domain>/controller/<id> (sets tls.cert_file).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (sets tls.key_file).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Run without TLS or authentication (development only; logged as a warning).
    #[arg(long)]
    plaintext: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ControllerConfig::load(Overrides {
        config_file: args.config,
        id: args.id,
        data_dir: args.data_dir,
        listen: args.listen,
        peers: args.peers,
        log_format: args.log_format,
        metrics_listen: args.metrics_listen,
        join: args.join,
        tls_ca: args.tls_ca,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        plaintext: args.plaintext,
    })?;
    init_tracing(&config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        baton_controller::run(config, listener, shutdown_signal()).await
    })
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,raft=warn,h2=warn,tower=warn,hyper=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
