//! Prometheus metrics of the sidecar, served as text on `GET /metrics` at
//! `--metrics-listen`. Everything is read from [`Agent::status`] at scrape
//! time, so the check path stays free of counters.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::Agent;

/// Renders the agent's current figures.
pub fn render(agent: &Agent) -> String {
    let status = agent.status();
    let mut registry = Registry::with_prefix("baton_agent");
    let mut gauge = |name: &str, help: &str, value: i64| {
        let g: Gauge = Gauge::default();
        g.set(value);
        registry.register(name, help, g);
    };
    gauge("broker_epoch", "This broker's epoch (0 until registered)", status.broker_epoch as i64);
    gauge("metadata_version", "Metadata version applied", status.metadata_version as i64);
    gauge(
        "lease_remaining_milliseconds",
        "Time left on the lease (0 when lapsed)",
        status.lease_remaining.as_millis() as i64,
    );
    gauge("connected", "1 while a session with the active controller is open", i64::from(status.connected));
    gauge("partitions_led", "Partitions the view says this broker leads", i64::from(status.partitions_led));
    gauge("progress_pending", "Partitions whose progress waits for a heartbeat", status.progress_pending as i64);
    gauge("progress_dropped", "Progress records dropped at the queue bound", status.progress_dropped as i64);
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    out
}

/// Serves `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    agent: Agent,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app =
        axum::Router::new().route(
            "/metrics",
            get(move || {
                let agent = agent.clone();
                async move {
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&agent))
                }
            }),
        );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::testing;

    fn value(text: &str, name: &str) -> Option<i64> {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
    }

    #[test]
    fn metrics_report_the_lease_and_leadership() {
        let agent = testing::idle_agent(1);
        let update = testing::update(7, true, vec![testing::partition("t", 0, 1, 3, &[1, 2])], &[]);
        assert!(testing::apply(&agent, &update));
        let text = super::render(&agent);
        assert_eq!(value(&text, "baton_agent_lease_remaining_milliseconds"), Some(0), "{text}");
        assert_eq!(value(&text, "baton_agent_partitions_led"), Some(1), "{text}");
        assert_eq!(value(&text, "baton_agent_metadata_version"), Some(7), "{text}");
        testing::grant_lease(&agent, Duration::from_secs(60));
        let text = super::render(&agent);
        assert!(value(&text, "baton_agent_lease_remaining_milliseconds").is_some_and(|ms| ms > 50_000), "{text}");
    }
}
