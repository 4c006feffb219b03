//! `batonctl certs`: a development CA and certificates, one SPIFFE identity
//! each (docs/SECURITY.md). Production clusters use their own PKI; these
//! files only need to look like what `baton-security` accepts.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use baton_security::Principal;
use baton_security::certs::{self, Pem};

use crate::cli::CertsCommand;

pub fn run(cmd: CertsCommand, trust_domain: &str) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Init { dir, controller_ids, broker_ids, admins, clients, hosts, days } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let ca = certs::new_ca(trust_domain, days)?;
            write(&dir.join("ca.pem"), &ca.cert, false, false)?;
            write(&dir.join("ca.key"), &ca.key, true, false)?;
            let principals = controller_ids
                .into_iter()
                .map(Principal::Controller)
                .chain(broker_ids.into_iter().map(Principal::Broker))
                .chain(admins.into_iter().map(Principal::Admin))
                .chain(clients.into_iter().map(Principal::Client));
            for p in principals {
                issue_to(&ca, trust_domain, &p, &hosts, days, &stem(&dir, &p), false)?;
            }
            println!("wrote a CA and certificates for trust domain {trust_domain:?} to {}", dir.display());
            Ok(())
        }
        CertsCommand::Issue { dir, identity, out, hosts, days, force } => {
            let principal = Principal::parse_path(&identity).with_context(|| {
                format!("{identity:?} is not controller/<id>, broker/<id>, admin/<name> or client/<name>")
            })?;
            let ca = Pem {
                cert: std::fs::read_to_string(dir.join("ca.pem")).context("reading ca.pem")?,
                key: std::fs::read_to_string(dir.join("ca.key")).context("reading ca.key")?,
            };
            let stem = out.unwrap_or_else(|| stem(&dir, &principal));
            issue_to(&ca, trust_domain, &principal, &hosts, days, &stem, force)?;
            println!("wrote {}.pem and {}.key for {principal}", stem.display(), stem.display());
            Ok(())
        }
    }
}

/// `dir/<kind>-<name>`.
fn stem(dir: &Path, p: &Principal) -> PathBuf {
    dir.join(p.to_string().replace('/', "-"))
}

fn issue_to(
    ca: &Pem,
    trust_domain: &str,
    p: &Principal,
    hosts: &[String],
    days: i64,
    stem: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let (ips, dns): (Vec<&String>, Vec<&String>) = hosts.iter().partition(|h| h.parse::<IpAddr>().is_ok());
    let ips: Vec<IpAddr> = ips.into_iter().filter_map(|h| h.parse().ok()).collect();
    let dns: Vec<String> = dns.into_iter().cloned().collect();
    let leaf = certs::issue(ca, trust_domain, p, &dns, &ips, days)?;
    // Key first, certificate last: a reloader that sees the new certificate
    // finds its key already in place.
    write(&stem.with_extension("key"), &leaf.key, true, force)?;
    write(&stem.with_extension("pem"), &leaf.cert, false, force)?;
    Ok(())
}

fn write(path: &Path, contents: &str, secret: bool, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; not overwriting it (use `certs issue --force` to rotate)", path.display());
    }
    // Write beside, then rename: readers never see half a file.
    let tmp = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
