//! Kernel-level network faults (root only): a broker runs in its own network
//! namespace, joined to the host namespace by a veth pair, and faults are put
//! on that pair by the kernel instead of the proxy:
//!
//! | fault | how |
//! |---|---|
//! | packet loss | `iptables -m statistic --mode random --probability p -j DROP` on INPUT and OUTPUT in the namespace: real segments lost, TCP retransmits |
//! | one-way cut | `iptables -A OUTPUT -o <veth> -j DROP` (or INPUT): everything one way is lost, ACKs included |
//! | delay | `tc qdisc replace dev <veth> root netem delay d j` on both ends, when the kernel has `sch_netem` ([`netem_supported`]) |
//!
//! **Names.** Namespaces are `baton-<pid>-<n>` and veth ends `bt<pid>x<n>h` /
//! `…n` (at most 15 bytes), with `n` a per-process counter, and the /30
//! subnet is derived from (pid, n) inside 10.128.0.0/9 and checked against
//! the host's addresses, so tests in parallel processes do not collide.
//!
//! **Cleanup.** [`NetNs`] is a guard: dropping it (also while a test
//! panics) deletes the namespace, which takes the veth pair, its qdiscs and
//! every iptables rule in the namespace with it; the host end is deleted
//! too in case the namespace went first. Processes started in the namespace
//! must be stopped before (the cluster drops its processes first).
//!
//! [`unavailable`] says why these faults cannot run (not root, `ip` /
//! `iptables` / `tc` missing, namespaces refused); callers skip with that
//! message. `scripts/install-netns-tools.sh` installs the tools (CI runs it).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command; Err with its stderr when it fails or cannot start.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {} ({})", args.join(" "), String::from_utf8_lossy(&out.stderr).trim(), out.status))
    }
}

/// Why kernel network faults cannot run here, or None when they can.
pub fn unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return Some("not running as root (network namespaces, iptables and tc need it)".into());
        }
        for (tool, arg) in [("ip", "-V"), ("tc", "-V"), ("iptables", "--version")] {
            if Command::new(tool).arg(arg).output().is_err() {
                return Some(format!(
                    "`{tool}` is not installed (scripts/install-netns-tools.sh: apt-get install iproute2 iptables)"
                ));
            }
        }
        match NetNs::create() {
            Ok(ns) => ns.iptables(&["-L", "OUTPUT", "-n"]).err().map(|e| format!("iptables in a namespace: {e}")),
            Err(e) => Some(format!("cannot create a network namespace: {e}")),
        }
    })
    .clone()
}

/// Whether the kernel has the netem qdisc (probed once, in a scratch namespace).
pub fn netem_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        NetNs::create().is_ok_and(|ns| {
            run("ip", &["netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
                .is_ok()
        })
    })
}

/// One network namespace with a veth pair to the host namespace.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
    host_if: String,
    ns_if: String,
    /// The host end's address: what processes in the namespace dial.
    pub host_ip: Ipv4Addr,
    /// The namespace end's address.
    pub ns_ip: Ipv4Addr,
}

impl NetNs {
    /// Creates the namespace and its veth pair, both ends up, loopback up.
    pub fn create() -> Result<NetNs, String> {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let taken = run("ip", &["-o", "-4", "addr", "show"]).unwrap_or_default();
        // A /30 per namespace in 10.128.0.0/9, from (pid, n); skip any in use.
        let mut slot = (pid.wrapping_mul(64).wrapping_add(n)) % (1 << 21);
        let base = loop {
            let base = u32::from(Ipv4Addr::new(10, 128, 0, 0)) + slot * 4;
            if !taken.contains(&format!(" {}/", Ipv4Addr::from(base + 1))) {
                break base;
            }
            slot = (slot + 1) % (1 << 21);
        };
        let ns = NetNs {
            name: format!("baton-{pid}-{n}"),
            host_if: format!("bt{pid}x{n}h"),
            ns_if: format!("bt{pid}x{n}n"),
            host_ip: Ipv4Addr::from(base + 1),
            ns_ip: Ipv4Addr::from(base + 2),
        };
        run("ip", &["netns", "add", &ns.name])?;
        // From here on the guard cleans up whatever step fails.
        let host = format!("{}/30", ns.host_ip);
        let inner = format!("{}/30", ns.ns_ip);
        run("ip", &["link", "add", &ns.host_if, "type", "veth", "peer", "name", &ns.ns_if])?;
        run("ip", &["link", "set", &ns.ns_if, "netns", &ns.name])?;
        run("ip", &["addr", "add", &host, "dev", &ns.host_if])?;
        run("ip", &["link", "set", &ns.host_if, "up"])?;
        run("ip", &["-n", &ns.name, "addr", "add", &inner, "dev", &ns.ns_if])?;
        run("ip", &["-n", &ns.name, "link", "set", &ns.ns_if, "up"])?;
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The command prefix that runs a program inside the namespace
    /// (`ip netns exec` execs it: the pid is the program's).
    pub fn exec_prefix(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone()]
    }

    fn iptables(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name, "iptables", "-w"];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Loses each packet in and out of the namespace with probability `permille`/1000.
    pub fn loss(&self, permille: u32) -> Result<(), String> {
        let p = format!("{:.4}", f64::from(permille.min(1000)) / 1000.0);
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(&["-A", chain, "-m", "statistic", "--mode", "random", "--probability", &p, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Drops everything the namespace sends (`out`) or receives (`!out`) on its veth.
    pub fn drop_one_way(&self, out: bool) -> Result<(), String> {
        if out {
            self.iptables(&["-A", "OUTPUT", "-o", &self.ns_if, "-j", "DROP"]).map(drop)
        } else {
            self.iptables(&["-A", "INPUT", "-i", &self.ns_if, "-j", "DROP"]).map(drop)
        }
    }

    /// Delays both directions by `delay` + up to `jitter` (tc netem on both ends).
    pub fn delay(&self, delay: Duration, jitter: Duration) -> Result<(), String> {
        let d = format!("{}ms", delay.as_millis());
        let j = format!("{}ms", jitter.as_millis());
        run("tc", &["qdisc", "replace", "dev", &self.host_if, "root", "netem", "delay", &d, &j])?;
        let args =
            ["netns", "exec", &self.name, "tc", "qdisc", "replace", "dev", &self.ns_if, "root", "netem", "delay"];
        let mut all = args.to_vec();
        all.extend([d.as_str(), j.as_str()]);
        run("ip", &all).map(drop)
    }

    /// Packets the namespace's iptables rules dropped so far.
    pub fn dropped_packets(&self) -> u64 {
        let Ok(text) = self.iptables(&["-L", "-v", "-n", "-x"]) else { return 0 };
        text.lines()
            .filter(|l| l.contains("DROP"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Removes every fault: iptables rules flushed, qdiscs deleted. Returns
    /// the packets the rules dropped.
    pub fn clear(&self) -> u64 {
        let dropped = self.dropped_packets();
        let _ = self.iptables(&["-F"]);
        let _ = run("tc", &["qdisc", "del", "dev", &self.host_if, "root"]);
        let _ = run("ip", &["netns", "exec", &self.name, "tc", "qdisc", "del", "dev", &self.ns_if, "root"]);
        dropped
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end (and so the pair),
        // its qdiscs and its iptables rules.
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = run("ip", &["link", "del", &self.host_if]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace's faults really hit (packets counted as dropped) and
    /// everything is gone after the guard drops. Skips, saying why, without root.
    #[test]
    fn a_namespace_is_created_faulted_and_cleaned_up() {
        if let Some(why) = unavailable() {
            eprintln!("SKIPPED: kernel network faults unavailable: {why}");
            return;
        }
        let ns = NetNs::create().expect("namespace");
        let (name, host_if) = (ns.name.clone(), ns.host_if.clone());
        assert!(run("ip", &["netns", "list"]).expect("list").contains(&name));
        ns.drop_one_way(true).expect("one-way drop");
        // A connect from inside the namespace to the host end: its SYNs are dropped.
        let target = format!("{}:9", ns.host_ip);
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "timeout",
                "1",
                "bash",
                "-c",
                &format!("echo > /dev/tcp/{}", target.replace(':', "/")),
            ])
            .output();
        assert!(ns.dropped_packets() >= 1, "the one-way drop dropped nothing");
        assert!(ns.clear() >= 1);
        assert_eq!(ns.dropped_packets(), 0, "rules survived clear");
        ns.loss(500).expect("loss");
        drop(ns);
        assert!(!run("ip", &["netns", "list"]).expect("list").contains(&name), "namespace left behind");
        assert!(run("ip", &["link", "show", &host_if]).is_err(), "veth left behind");
    }
}
