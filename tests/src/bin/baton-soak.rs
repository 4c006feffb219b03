//! `baton-soak`: runs seeded nemesis schedules back to back for a duration
//! and prints a summary (schedules, faults by kind, operations, violations).
//!
//! ```text
//! cargo build --workspace --bins --release
//! cargo run -p baton-tests --release --bin baton-soak -- --duration 30m --seed 1
//! cargo run -p baton-tests --release --bin baton-soak -- --duration 30m --all   # every fault kind
//! ```
//!
//! `--all` draws every fault kind: the base set, link delays (`--extended`),
//! proxy loss, fsync failures and stalls, a founding controller removed and
//! rejoined (`--more`), kernel loss/delay/one-way drops on brokers in network
//! namespaces (`--netns`, root only: without root, `ip` or `iptables` it is
//! left out and the summary says why), and the 4th controller's membership
//! rounds (`--membership`).
//!
//! Schedule `i` uses seed `--seed + i`, so any failing schedule is replayed
//! with `--seed <that seed> --schedules 1`. A schedule with violations
//! prints the checker's report and keeps its folder (logs and histories).
//! Exits non-zero if any schedule had a violation or failed to run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_tests::nemesis::netns;
use baton_tests::nemesis::runner::{FaultHits, RunConfig, run};
use baton_tests::nemesis::schedule::FaultKind;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "baton-soak")]
struct Flags {
    /// How long to keep starting schedules: 90s, 30m, 2h.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the first schedule; schedule i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults per schedule.
    #[arg(long, default_value_t = 8)]
    faults: usize,
    /// Stop after this many schedules (default: only the duration bounds it).
    #[arg(long)]
    schedules: Option<u64>,
    /// Keep every schedule's folder, not only failing ones.
    #[arg(long)]
    keep: bool,
    /// Also add and remove a 4th controller in rounds while the faults run.
    #[arg(long)]
    membership: bool,
    /// Also draw link delays (20-400 ms plus jitter) among the faults.
    #[arg(long)]
    extended: bool,
    /// Also draw proxy loss, fsync failures/stalls and founding-controller
    /// remove-and-rejoin among the faults.
    #[arg(long)]
    more: bool,
    /// Also draw kernel link faults on brokers in network namespaces (root only).
    #[arg(long)]
    netns: bool,
    /// Every fault kind: --membership --extended --more, and --netns when
    /// the machine allows it.
    #[arg(long)]
    all: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?} (e.g. 90s, 30m, 2h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad unit in {s:?}: use s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

#[derive(Default)]
struct Totals {
    schedules: u64,
    failed_to_run: u64,
    faults: BTreeMap<FaultKind, u64>,
    accepted: u64,
    refused: u64,
    observed: u64,
    metadata_acked: u64,
    metadata_ambiguous: u64,
    bad_lines: usize,
    membership_added: u64,
    membership_removed: u64,
    membership_gave_up: u64,
    violations: BTreeMap<String, u64>,
    failing_seeds: Vec<u64>,
    hits: FaultHits,
}

fn main() -> anyhow::Result<()> {
    let mut flags = Flags::parse();
    if flags.all {
        flags.membership = true;
        flags.extended = true;
        flags.more = true;
        flags.netns = true;
    }
    if flags.netns
        && let Some(why) = netns::unavailable()
    {
        anyhow::ensure!(flags.all, "--netns: kernel network faults unavailable: {why}");
        println!("netns fault kinds left out: {why}");
        flags.netns = false;
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let command: Vec<String> = std::env::args().collect();
    // The commit checked out where it runs (the binaries may be older: say which in reports).
    println!("baton-soak at commit {commit}: {}", command.join(" "));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut i = 0u64;
    // Bounded by the duration and by --schedules.
    while started.elapsed() < flags.duration && flags.schedules.is_none_or(|n| i < n) {
        let seed = flags.seed + i;
        i += 1;
        let mut config = RunConfig::new(seed, flags.faults);
        config.keep_dir = flags.keep;
        config.membership = flags.membership;
        config.extended = flags.extended;
        config.more = flags.more;
        config.netns = flags.netns;
        eprintln!("=== schedule {i}, seed {seed} ===");
        match runtime.block_on(run(&config)) {
            Ok(outcome) => {
                totals.schedules += 1;
                for (k, n) in outcome.faults_by_kind() {
                    *totals.faults.entry(k).or_default() += n;
                }
                totals.accepted += outcome.writes_accepted;
                totals.refused += outcome.writes_refused;
                totals.observed += outcome.observed;
                totals.metadata_acked += outcome.metadata.acked;
                totals.metadata_ambiguous += outcome.metadata.ambiguous;
                totals.bad_lines += outcome.bad_lines;
                totals.hits.add(&outcome.hits);
                if let Some(m) = outcome.membership {
                    totals.membership_added += m.added;
                    totals.membership_removed += m.removed;
                    totals.membership_gave_up += m.gave_up;
                }
                for v in &outcome.report.violations {
                    *totals.violations.entry(format!("{:?}", v.check)).or_default() += 1;
                }
                eprintln!(
                    "seed {seed}: {} violations, {} writes accepted, {:.0?}",
                    outcome.report.violations.len(),
                    outcome.writes_accepted,
                    outcome.elapsed
                );
                if !outcome.report.is_ok() {
                    totals.failing_seeds.push(seed);
                    println!("seed {seed}:\n{}", outcome.report);
                }
                if let Some(dir) = &outcome.kept {
                    eprintln!("seed {seed}: folder kept in {}", dir.display());
                }
            }
            Err(e) => {
                totals.failed_to_run += 1;
                totals.failing_seeds.push(seed);
                eprintln!("seed {seed}: the run failed: {e:#}");
            }
        }
    }
    print_summary(&totals, started.elapsed());
    println!("  commit:               {commit}");
    println!("  command:              {}", command.join(" "));
    anyhow::ensure!(totals.failing_seeds.is_empty(), "failing seeds: {:?}", totals.failing_seeds);
    Ok(())
}

fn print_summary(t: &Totals, elapsed: Duration) {
    println!("soak summary ({:.0?})", elapsed);
    println!("  schedules run:        {} ({} failed to run)", t.schedules, t.failed_to_run);
    println!("  faults by kind:");
    for kind in FaultKind::every() {
        println!("    {:<28} {}", kind.name(), t.faults.get(&kind).copied().unwrap_or(0));
    }
    println!("  writes accepted:      {} (recorded)", t.accepted);
    println!("  writes refused:       {} (sampled)", t.refused);
    println!("  leaders observed:     {}", t.observed);
    println!("  metadata acked:       {} ({} ambiguous, resolved)", t.metadata_acked, t.metadata_ambiguous);
    println!("  unparsable lines:     {}", t.bad_lines);
    println!(
        "  controllers added:    {} (removed {}, steps given up {})",
        t.membership_added, t.membership_removed, t.membership_gave_up
    );
    let h = &t.hits;
    println!(
        "  fsync failures:       {} stopped the controller, {} found nothing to sync",
        h.fsync_stops, h.fsync_idle
    );
    println!("  founding rejoins:     {} voters again ({} steps given up)", h.rejoined, h.rejoin_gave_up);
    println!("  proxy chunks lost:    {} (held for a retransmission timeout)", h.chunks_lost);
    println!("  kernel packets dropped: {}", h.packets_dropped);
    let total: u64 = t.violations.values().sum();
    println!("  violations:           {total}");
    for (check, n) in &t.violations {
        println!("    {check:<28} {n}");
    }
    if !t.failing_seeds.is_empty() {
        println!("  failing seeds:        {:?}", t.failing_seeds);
    }
}
