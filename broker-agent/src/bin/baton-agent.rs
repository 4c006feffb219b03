//! `baton-agent`: the sidecar. Parses flags, sets up tracing, binds the
//! listener and hands over to `baton_agent::run`.

use std::path::PathBuf;

use anyhow::Context;
use baton_agent::config::{SidecarOverrides, load_sidecar_config};
use baton_agent::sidecar::shutdown_signal;
use baton_agent::{LogFormat, SidecarListener};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// jemalloc instead of glibc's malloc: a mass election allocates and frees
/// hundreds of thousands of small records at once, and glibc spent about half
/// of that in page faults and chunk consolidation (docs/BENCHMARKS.md,
/// "Bottlenecks found" 5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Baton broker agent sidecar: holds the broker's controller session and
/// answers leadership checks over a local gRPC API.
#[derive(Parser, Debug)]
#[command(name = "baton-agent", version)]
struct Flags {
    /// This broker's id.
    #[arg(long)]
    broker_id: Option<i32>,
    /// Controller addresses, comma-separated host:port.
    #[arg(long)]
    controllers: Option<String>,
    /// host:port where Kafka clients reach this broker.
    #[arg(long)]
    advertised: Option<String>,
    /// Address of the local API: host:port, or unix:/path/to.sock [default: 127.0.0.1:7201].
    #[arg(long)]
    listen: Option<String>,
    #[arg(long)]
    rack: Option<String>,
    /// Interval between heartbeats [default: 500].
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// TOML config file; BATON_AGENT_* variables override it, flags override both.
    #[arg(long)]
    config: Option<PathBuf>,
    /// text or json [default: text].
    #[arg(long)]
    log_format: Option<String>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// PEM CA bundle trusted for the controllers (mTLS).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// PEM certificate naming spiffe://<trust-domain>/broker/<broker-id>.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Talk to the controllers without TLS (they must run plaintext too).
    #[arg(long)]
    plaintext: bool,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let overrides = SidecarOverrides {
        broker_id: flags.broker_id,
        controllers: flags.controllers,
        advertised: flags.advertised,
        listen: flags.listen,
        rack: flags.rack,
        heartbeat_interval_ms: flags.heartbeat_interval_ms,
        log_format: flags.log_format,
        metrics_listen: flags.metrics_listen,
        tls_ca: flags.tls_ca,
        tls_cert: flags.tls_cert,
        tls_key: flags.tls_key,
        plaintext: flags.plaintext,
    };
    let config = load_sidecar_config(flags.config.as_deref(), &overrides)?;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }

    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let listener = SidecarListener::bind(&config.listen).await?;
        baton_agent::run(config, listener, shutdown_signal()).await
    })
}
