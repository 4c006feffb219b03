//! Certificates, keys and CAs loaded from files into rustls configurations,
//! reloaded in place when the files change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tracing::{info, warn};

use crate::config::{Files, TlsConfig, read};
use crate::identity::Principal;

/// The ALPN protocol of gRPC.
const H2: &[u8] = b"h2";

/// One consistent set of trust roots, certificate chain and key.
struct Material {
    /// The raw bytes the set was built from, to notice a change.
    source: Vec<u8>,
    principal: Principal,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server: Arc<ServerConfig>,
}

/// A process's TLS identity and trust, swapped atomically on rotation.
pub struct Tls {
    files: Files,
    trust_domain: String,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Material>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).field("principal", &self.principal()).finish()
    }
}

/// Which server a client accepts at the other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Any controller of the trust domain (agents, batonctl).
    AnyController,
    /// Exactly this controller (raft links, forwarding to a known leader).
    Controller(u64),
    /// Exactly this principal (e.g. a broker's sidecar).
    Principal(Principal),
}

impl Expect {
    fn accepts(&self, principal: &Principal) -> bool {
        match self {
            Expect::AnyController => principal.is_controller(),
            Expect::Controller(id) => *principal == Principal::Controller(*id),
            Expect::Principal(p) => p == principal,
        }
    }
}

impl Tls {
    /// Loads the configured files; `Ok(None)` for explicit plaintext (logged
    /// as a warning), an error for a missing or unusable file.
    pub fn from_config(config: &TlsConfig, role: &str) -> anyhow::Result<Option<Arc<Tls>>> {
        let Some(files) = config.files()? else {
            warn!(
                role,
                "tls.plaintext = true: no encryption and no authentication on any link; anyone who can reach this process can act as any broker, controller or admin"
            );
            return Ok(None);
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let material = load(&files, &config.trust_domain, &provider)?;
        info!(role, identity = %material.principal, cert = %files.cert.display(), "mTLS on");
        let tls = Arc::new(Tls {
            files,
            trust_domain: config.trust_domain.clone(),
            provider,
            current: ArcSwap::from_pointee(material),
        });
        if config.reload_interval_ms > 0 {
            tls.clone().spawn_reloader(Duration::from_millis(config.reload_interval_ms));
        }
        Ok(Some(tls))
    }

    /// The identity this process's own certificate names.
    pub fn principal(&self) -> Principal {
        self.current.load().principal.clone()
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The server configuration for new connections (requires a client
    /// certificate from a trusted CA).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load().server.clone()
    }

    /// A client configuration presenting this process's certificate and
    /// accepting only a server that `expect` names.
    pub fn client_config(&self, expect: Expect) -> anyhow::Result<Arc<ClientConfig>> {
        let m = self.current.load();
        let verifier = Arc::new(PeerVerifier {
            roots: m.roots.clone(),
            provider: self.provider.clone(),
            trust_domain: self.trust_domain.clone(),
            expect,
        });
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(m.chain.clone(), m.key.clone_key())
            .context("client certificate")?;
        config.alpn_protocols = vec![H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files now; true when a new, valid set took effect.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let source = source_bytes(&self.files)?;
        if source == self.current.load().source {
            return Ok(false);
        }
        let material = load(&self.files, &self.trust_domain, &self.provider)?;
        let before = self.principal();
        if material.principal != before {
            // A rotated certificate must keep the identity: a controller
            // turning into a broker mid-flight is a misconfiguration.
            bail!("the new certificate names {} but this process is {before}; keeping the old one", material.principal);
        }
        self.current.store(Arc::new(material));
        Ok(true)
    }

    fn spawn_reloader(self: Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(&self);
        drop(self);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!("no tokio runtime: TLS files will not be reloaded");
            return;
        };
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                match tls.reload() {
                    Ok(true) => info!(cert = %tls.files.cert.display(), "TLS certificate, key or CA reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "TLS reload failed; the previous certificate stays in use")
                    }
                }
            }
        });
    }
}

fn source_bytes(files: &Files) -> anyhow::Result<Vec<u8>> {
    let mut all = read(&files.ca)?;
    all.push(0);
    all.extend(read(&files.cert)?);
    all.push(0);
    all.extend(read(&files.key)?);
    Ok(all)
}

fn load(files: &Files, trust_domain: &str, provider: &Arc<CryptoProvider>) -> anyhow::Result<Material> {
    let source = source_bytes(files)?;
    let ca_pem = read(&files.ca)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.with_context(|| format!("parsing {}", files.ca.display()))?;
        roots.add(cert).with_context(|| format!("adding a CA from {}", files.ca.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no CA certificate", files.ca.display());
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let Some(leaf) = chain.first() else { bail!("{} holds no certificate", files.cert.display()) };
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .with_context(|| format!("parsing the private key in {}", files.key.display()))?;
    let principal = Principal::from_cert_der(leaf, trust_domain)
        .with_context(|| format!("the identity of {}", files.cert.display()))?;
    let roots = Arc::new(roots);

    // Our own certificate must chain to the CA we trust: catches a cert and
    // CA from different sets before any peer does.
    let parsed = ParsedCertificate::try_from(leaf).context("parsing our own certificate")?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &chain[1..],
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .with_context(|| format!("{} is not signed by a CA in {}", files.cert.display(), files.ca.display()))?;

    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .context("building the client certificate verifier")?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .with_context(|| format!("{} does not match {}", files.key.display(), files.cert.display()))?;
    server.alpn_protocols = vec![H2.to_vec()];
    Ok(Material { source, principal, roots, chain, key, server: Arc::new(server) })
}

/// Checks a server's chain against our CAs and its SPIFFE identity against
/// what we dialed; the host name is not an identity and is not checked.
#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    trust_domain: String,
    expect: Expect,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let principal = Principal::from_cert_der(end_entity, &self.trust_domain)
            .map_err(|e| rustls::Error::General(format!("server identity: {e}")))?;
        if !self.expect.accepts(&principal) {
            return Err(rustls::Error::General(format!("server is {principal}, expected {:?}", self.expect)));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
