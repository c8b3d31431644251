//! Cluster membership as TLS: a CA derived from the cluster secret, and a
//! member certificate every node issues itself at startup.
//!
//! Every node derives the same Ed25519 CA key from the secret (HKDF label
//! `shoal tls ca v1` → 32-byte seed → PKCS#8 → rcgen key), builds the CA
//! certificate from fixed parameters, and signs a leaf certificate for a
//! fresh random key of its own. Both ends of a connection present their
//! leaf and verify the other's chain against the CA with rustls' standard
//! WebPKI verifiers (mutual TLS 1.3; the server requires a client
//! certificate). A node without the secret cannot produce a leaf that
//! chains to the CA, so its handshake fails before any stream is accepted.
//!
//! Validity dates are rcgen's defaults (1975–4096): the CA key can mint a
//! certificate at any time for anyone holding the secret, so expiry would
//! add no protection, while clock skew between nodes could break a cluster.
//! Revocation is rotation: change the secret, restart the members.
//! The leaf's name is the fixed [`SERVER_NAME`], since peers are dialled by
//! address and any member may serve any piece; pieces are verified by hash
//! anyway.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use shoal_proto::Digest;
use shoal_proto::wire::{ALPN, ClusterSecret};

/// HKDF label of the CA key seed.
const CA_LABEL: &[u8] = b"shoal tls ca v1";

/// The DNS name in every member certificate, and the name a client expects.
pub const SERVER_NAME: &str = "member.shoal.invalid";

/// DER of a PKCS#8 v1 Ed25519 private key, up to the 32-byte seed
/// (RFC 8410: version 0, algorithm id-Ed25519, OCTET STRING of the seed).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why the TLS identity or configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up cluster TLS: {0}")]
pub struct TlsSetupError(String);

pub(crate) fn setup_err(e: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError(e.to_string())
}

/// This node's TLS identity as a cluster member: the cluster CA and a
/// leaf certificate signed by it.
pub struct ClusterTls {
    ca_cert: CertificateDer<'static>,
    leaf_cert: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("ca", &self.ca_fingerprint())
            .finish_non_exhaustive()
    }
}

/// The CA's fixed parameters: the same on every node, so the subject every
/// leaf names as issuer is the subject of every node's trust anchor.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Shoal");
    dn.push(DnType::CommonName, "Shoal cluster CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// The cluster CA key pair, derived from the secret.
fn ca_key(secret: &ClusterSecret) -> Result<KeyPair, TlsSetupError> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&secret.derive_key(CA_LABEL));
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519)
        .map_err(setup_err)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ClusterTls {
    /// Derives the cluster CA from `secret` and issues this node a fresh
    /// member certificate.
    pub fn new(secret: &ClusterSecret) -> Result<Self, TlsSetupError> {
        let ca_params = ca_params();
        let ca_key = ca_key(secret)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(setup_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate_for(&PKCS_ED25519).map_err(setup_err)?;
        let mut leaf = CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(setup_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Shoal");
        dn.push(DnType::CommonName, "Shoal cluster member");
        leaf.distinguished_name = dn;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(setup_err)?;

        Ok(ClusterTls {
            ca_cert: ca_cert.der().clone(),
            leaf_cert: leaf_cert.der().clone(),
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }

    /// sha256 of the CA certificate: equal on every node with the same
    /// secret, so safe and useful to log when nodes refuse each other.
    pub fn ca_fingerprint(&self) -> Digest {
        Digest::of(&self.ca_cert)
    }

    /// The cluster CA certificate (public: every member presents a leaf
    /// it signed; only the secret can sign one).
    pub fn ca_certificate(&self) -> CertificateDer<'static> {
        self.ca_cert.clone()
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_cert.clone()).map_err(setup_err)?;
        Ok(Arc::new(roots))
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.leaf_key.clone_key())
    }

    /// TLS 1.3 server side: our leaf, and a client certificate chaining to
    /// the cluster CA required from every client. No 0-RTT.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, TlsSetupError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(setup_err)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.leaf_cert.clone()], self.key())
            .map_err(setup_err)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.max_early_data_size = 0;
        Ok(config)
    }

    /// TLS 1.3 client side: the server must chain to the cluster CA (and
    /// name [`SERVER_NAME`]); we present our leaf.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, TlsSetupError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup_err)?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(vec![self.leaf_cert.clone()], self.key())
            .map_err(setup_err)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// TLS 1.3 server side of a daemon's HTTP API: like
    /// [`server_config`](Self::server_config) (a member certificate
    /// required from every client), with the ALPN `http/1.1`.
    pub fn http_server_config(&self) -> Result<rustls::ServerConfig, TlsSetupError> {
        let mut config = self.server_config()?;
        config.alpn_protocols = vec![HTTP_ALPN.to_vec()];
        Ok(config)
    }

    /// TLS 1.3 client side of the daemons' HTTP APIs, for a client that
    /// dials `https://ADDR`: the server must present a certificate chaining
    /// to the cluster CA and naming [`SERVER_NAME`], whatever host the URL
    /// names (not the system roots); we present our leaf. ALPN `http/1.1`.
    pub fn http_client_config(&self) -> Result<rustls::ClientConfig, TlsSetupError> {
        let inner = WebPkiServerVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(setup_err)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(MemberVerifier(inner)))
            .with_client_auth_cert(vec![self.leaf_cert.clone()], self.key())
            .map_err(setup_err)?;
        config.alpn_protocols = vec![HTTP_ALPN.to_vec()];
        Ok(config)
    }

    /// A client that trusts the cluster CA but presents no certificate, as
    /// an outsider who learnt the (public) CA certificate would.
    #[cfg(test)]
    pub(crate) fn client_config_without_cert(&self) -> rustls::ClientConfig {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(self.roots().unwrap())
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN.to_vec()];
        config
    }
}

/// ALPN of the daemons' HTTP APIs over TLS.
pub const HTTP_ALPN: &[u8] = b"http/1.1";

/// Verifies a server's chain against the cluster CA for [`SERVER_NAME`],
/// ignoring the name the client dialled (an address): members are dialled
/// by address and all carry the same name.
#[derive(Debug)]
struct MemberVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for MemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(SERVER_NAME).expect("SERVER_NAME is a DNS name");
        self.0
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &[u8; 16]) -> ClusterSecret {
        ClusterSecret::new(*s).unwrap()
    }

    #[test]
    fn same_secret_same_ca_different_leaves() {
        let a = ClusterTls::new(&secret(b"0123456789abcdef")).unwrap();
        let b = ClusterTls::new(&secret(b"0123456789abcdef")).unwrap();
        let c = ClusterTls::new(&secret(b"fedcba9876543210")).unwrap();
        assert_eq!(a.ca_fingerprint(), b.ca_fingerprint());
        assert_ne!(a.ca_fingerprint(), c.ca_fingerprint());
        assert_ne!(a.leaf_cert, b.leaf_cert);
        assert!(!format!("{a:?}").contains("leaf_key"));
    }

    #[test]
    fn configs_build() {
        let a = ClusterTls::new(&secret(b"0123456789abcdef")).unwrap();
        let s = a.server_config().unwrap();
        assert_eq!(s.alpn_protocols, vec![b"shoal/2".to_vec()]);
        assert_eq!(s.max_early_data_size, 0);
        a.client_config().unwrap();
        let h = a.http_server_config().unwrap();
        assert_eq!(h.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(
            a.http_client_config().unwrap().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }
}
