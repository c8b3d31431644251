//! A throw-away certificate authority and a server certificate for
//! `127.0.0.1` / `localhost`, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

/// PEM files of a test CA and of a server certificate it signed.
pub struct TestPki {
    /// The CA certificate (what a client must trust).
    pub ca_pem: PathBuf,
    /// The server certificate chain (leaf, then CA).
    pub cert_pem: PathBuf,
    /// The server's private key.
    pub key_pem: PathBuf,
    /// The CA certificate in DER, for in-process clients.
    pub ca_der: CertificateDer<'static>,
}

impl TestPki {
    /// Generates a CA and a server certificate valid for `127.0.0.1`,
    /// `localhost` and `::1`, and writes them into `dir`.
    pub fn generate(dir: &Path) -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Shoal test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("server key");
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).expect("sign server cert");

        let pki = TestPki {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server-key.pem"),
            ca_der: ca_cert.der().clone(),
        };
        write(&pki.ca_pem, &ca_cert.pem());
        write(&pki.cert_pem, &format!("{}{}", cert.pem(), ca_cert.pem()));
        write(&pki.key_pem, &key.serialize_pem());
        pki
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
