//! The `[tls]` section shared by `baton-controller`, `baton-agent` and
//! `batonctl` (see `deploy/config/*.toml`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Where a process finds its certificate, key and CA, and how it treats them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve and dial without TLS and without identities: anyone who can
    /// reach the port may act as any broker, controller or admin. Only for
    /// development on one host; must be set explicitly and is logged as a
    /// warning at start.
    pub plaintext: bool,
    /// PEM bundle of the CA(s) whose certificates this process trusts.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain of this process (leaf first), with its SPIFFE URI.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The SPIFFE trust domain: only `spiffe://<trust_domain>/...` identities count.
    pub trust_domain: String,
    /// How often the three files are re-read; a change takes effect for new
    /// connections (existing ones keep the identity they proved). 0: never.
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            plaintext: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            trust_domain: "baton".to_owned(),
            reload_interval_ms: 5_000,
        }
    }
}

impl TlsConfig {
    /// The defaults overlaid with `<prefix>PLAINTEXT`, `<prefix>CA_FILE`,
    /// `<prefix>CERT_FILE`, `<prefix>KEY_FILE`, `<prefix>TRUST_DOMAIN` and
    /// `<prefix>RELOAD_INTERVAL_MS` from `vars` (e.g. the process
    /// environment with prefix `BATON_AGENT_TLS_`). Unparsable values are
    /// errors, not defaults.
    pub fn from_vars(prefix: &str, vars: impl Iterator<Item = (String, String)>) -> anyhow::Result<TlsConfig> {
        let mut c = TlsConfig::default();
        for (key, value) in vars {
            let Some(name) = key.strip_prefix(prefix) else { continue };
            match name {
                "PLAINTEXT" => {
                    c.plaintext = value.trim().parse().with_context(|| format!("{key}={value:?} is not true/false"))?
                }
                "CA_FILE" => c.ca_file = Some(value.into()),
                "CERT_FILE" => c.cert_file = Some(value.into()),
                "KEY_FILE" => c.key_file = Some(value.into()),
                "TRUST_DOMAIN" => c.trust_domain = value,
                "RELOAD_INTERVAL_MS" => {
                    c.reload_interval_ms = value.trim().parse().with_context(|| format!("{key}={value:?}"))?
                }
                _ => bail!("unknown variable {key}"),
            }
        }
        Ok(c)
    }
}

/// The three files of an mTLS configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsConfig {
    /// The files to load, `None` for explicit plaintext; an error when the
    /// configuration is neither (TLS is the default, so a missing file is a
    /// mistake, not a reason to fall back to plaintext).
    pub fn files(&self) -> anyhow::Result<Option<Files>> {
        if self.trust_domain.is_empty() || self.trust_domain.contains('/') {
            bail!("tls.trust_domain {:?} must be a non-empty name without '/'", self.trust_domain);
        }
        match (&self.ca_file, &self.cert_file, &self.key_file) {
            (Some(ca), Some(cert), Some(key)) => {
                if self.plaintext {
                    bail!("tls.plaintext = true and TLS files are both configured: choose one");
                }
                Ok(Some(Files { ca: ca.clone(), cert: cert.clone(), key: key.clone() }))
            }
            (None, None, None) if self.plaintext => Ok(None),
            (None, None, None) => bail!(
                "no TLS configured: set tls.ca_file, tls.cert_file and tls.key_file (make them with \
                 `batonctl certs init`), or set tls.plaintext = true to run without authentication"
            ),
            _ => bail!("tls.ca_file, tls.cert_file and tls.key_file must be set together"),
        }
    }

    /// Overlays command-line values (`--tls-ca` etc.) on this configuration.
    pub fn overlay(&mut self, ca: Option<PathBuf>, cert: Option<PathBuf>, key: Option<PathBuf>, plaintext: bool) {
        if ca.is_some() || cert.is_some() || key.is_some() {
            self.plaintext = false;
        }
        self.ca_file = ca.or(self.ca_file.take());
        self.cert_file = cert.or(self.cert_file.take());
        self.key_file = key.or(self.key_file.take());
        if plaintext {
            self.plaintext = true;
        }
    }
}

/// Reads a whole file with its name in the error.
pub(crate) fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_required_unless_plaintext_is_explicit() {
        let none = TlsConfig::default();
        assert!(none.files().expect_err("refused").to_string().contains("no TLS configured"));
        let plain = TlsConfig { plaintext: true, ..TlsConfig::default() };
        assert_eq!(plain.files().expect("test value"), None);
        let partial = TlsConfig { ca_file: Some("ca.pem".into()), ..TlsConfig::default() };
        assert!(partial.files().is_err());
        let both = TlsConfig {
            plaintext: true,
            ca_file: Some("a".into()),
            cert_file: Some("b".into()),
            key_file: Some("c".into()),
            ..TlsConfig::default()
        };
        assert!(both.files().is_err());
        let bad_domain = TlsConfig { plaintext: true, trust_domain: "a/b".into(), ..TlsConfig::default() };
        assert!(bad_domain.files().is_err());
    }
}
