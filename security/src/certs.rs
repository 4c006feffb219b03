//! A development certificate authority: a CA, and certificates carrying one
//! SPIFFE identity each, for `batonctl certs`. Production deployments use
//! their own PKI (cert-manager, Vault, SPIRE); these helpers only need to
//! produce what [`crate::pki`] accepts: a leaf with exactly one
//! `spiffe://<trust-domain>/<kind>/<name>` URI SAN, usable for both server
//! and client authentication, signed by the CA.

use std::net::IpAddr;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::Principal;

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A new self-signed CA for `trust_domain`, valid for `days`.
pub fn new_ca(trust_domain: &str, days: i64) -> anyhow::Result<Pem> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    // A name of its own: verifiers find a certificate's issuer by name, so
    // two CAs with one name in a rotation bundle would shadow each other.
    let id = OffsetDateTime::now_utc().unix_timestamp_nanos();
    params.distinguished_name.push(DnType::CommonName, format!("baton development CA ({trust_domain}) {id:x}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, days);
    let cert = params.self_signed(&key).context("signing the CA")?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

/// A certificate for `principal`, signed by the CA `ca`, valid for `days`.
/// `dns` and `ips` are added as SANs for tools that check host names
/// (Baton itself checks only the SPIFFE URI).
pub fn issue(
    ca: &Pem,
    trust_domain: &str,
    principal: &Principal,
    dns: &[String],
    ips: &[IpAddr],
    days: i64,
) -> anyhow::Result<Pem> {
    let ca_key = KeyPair::from_pem(&ca.key).context("parsing the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).context("parsing the CA certificate")?;
    let key = KeyPair::generate().context("generating a key")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
    params.distinguished_name.push(DnType::CommonName, principal.to_string());
    let uri = principal.uri(trust_domain);
    params.subject_alt_names.push(SanType::URI(uri.as_str().try_into().context("SPIFFE URI")?));
    for name in dns {
        params.subject_alt_names.push(SanType::DnsName(name.as_str().try_into().context("DNS name")?));
    }
    params.subject_alt_names.extend(ips.iter().copied().map(SanType::IpAddress));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer).with_context(|| format!("signing the certificate of {principal}"))?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

fn validity(params: &mut CertificateParams, days: i64) {
    // An hour back absorbs clock skew between the issuing and checking hosts.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days.max(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_exactly_their_identity() {
        let ca = new_ca("test", 1).expect("test value");
        let p = Principal::Broker(7);
        let leaf = issue(&ca, "test", &p, &["localhost".into()], &["127.0.0.1".parse().expect("test value")], 1)
            .expect("test value");
        let der = rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("test value");
        assert_eq!(Principal::from_cert_der(&der, "test"), Ok(p));
        assert!(Principal::from_cert_der(&der, "other").is_err());
    }

    use rustls::pki_types::pem::PemObject;
}
