//! How the client decides to trust a server: a CA bundle, or the SHA-256 fingerprint of the
//! server's (usually self-signed) certificate, pinned; and the client's own certificate for
//! servers that require mutual TLS ([`ClientIdentity`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// What the client trusts when it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Accept exactly the certificate with this SHA-256 fingerprint (of its DER bytes), whatever
    /// its issuer, name or validity dates; the server must still prove it holds the key.
    /// This is how clients trust an appliance's self-signed certificate.
    Fingerprint(Fingerprint),
    /// Accept certificates that chain to a CA in this PEM file and carry the server name.
    CaFile(PathBuf),
    /// Like [`Trust::CaFile`], with the PEM bytes in memory.
    CaPem(Vec<u8>),
}

/// Failure to turn a [`Trust`] into a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle holds no usable certificate.
    #[error("no CA certificate found in {0}")]
    NoCertificates(String),
    /// A CA certificate was rejected.
    #[error("unusable CA certificate: {0}")]
    BadCertificate(#[source] rustls::Error),
    /// A fingerprint string is not 32 hex bytes.
    #[error("bad certificate fingerprint {0:?}: expected 64 hex digits (colons allowed)")]
    BadFingerprint(String),
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Tls(#[source] rustls::Error),
    /// The crypto provider has no cipher suite QUIC can use.
    #[error("no TLS 1.3 cipher suite usable by QUIC")]
    NoQuicSuite,
    /// A client certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadIdentity {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The client certificate PEM holds no certificate.
    #[error("no certificate found in the client certificate PEM")]
    NoClientCertificate,
    /// The client key PEM holds no usable private key (PKCS#8, PKCS#1 or SEC1).
    #[error("no private key found in the client key PEM")]
    NoClientKey,
    /// rustls refused the client certificate and key (e.g. they do not match).
    #[error("unusable client certificate or key: {0}")]
    BadClientIdentity(#[source] rustls::Error),
}

/// A client certificate chain and its private key, presented to servers that require mutual
/// TLS (`tls.client_ca` on the appliance). The key never appears in `Debug` output and is
/// wiped when the identity is dropped.
#[derive(Clone)]
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key_pem: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// From PEM bytes: the certificate chain (leaf first) and the private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TrustError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TrustError::NoClientCertificate)?;
        if chain.is_empty() {
            return Err(TrustError::NoClientCertificate);
        }
        let identity = Self {
            chain,
            key_pem: zeroize::Zeroizing::new(key_pem.to_vec()),
        };
        identity.key()?;
        Ok(identity)
    }

    /// From a certificate chain file and a private key file, both PEM.
    pub fn from_files(
        cert_path: &std::path::Path,
        key_path: &std::path::Path,
    ) -> Result<Self, TrustError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| TrustError::ReadIdentity {
                path: path.to_owned(),
                source,
            })
        };
        let key_pem = zeroize::Zeroizing::new(read(key_path)?);
        Self::from_pem(&read(cert_path)?, &key_pem)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TrustError> {
        PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|_| TrustError::NoClientKey)
    }
}

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// A rustls verifier that accepts exactly the certificate with this fingerprint, for
    /// callers building their own TLS configuration (another protocol version, ALPN).
    pub fn verifier(self) -> Arc<dyn ServerCertVerifier> {
        Arc::new(PinnedVerifier::new(
            self,
            &rustls::crypto::ring::default_provider(),
        ))
    }

    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl FromStr for Fingerprint {
    type Err = TrustError;

    /// Parses 64 hex digits, optionally prefixed with `sha256:` and separated by colons or
    /// spaces, in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let body = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed);
        let digits: String = body
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out)
            .map_err(|_| TrustError::BadFingerprint(s.to_owned()))?;
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Trust {
    /// Builds the rustls client configuration (TLS 1.3 only, ALPN `umbrald/1`), without a
    /// client certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TrustError> {
        self.client_config_with(None)
    }

    /// Like [`Trust::client_config`], presenting `identity` to servers that ask for a client
    /// certificate.
    pub fn client_config_with(
        &self,
        identity: Option<&ClientIdentity>,
    ) -> Result<rustls::ClientConfig, TrustError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TrustError::Tls)?;
        let builder = match self {
            Trust::Fingerprint(fp) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(*fp, &provider))),
            Trust::CaFile(path) => {
                let pem = std::fs::read(path).map_err(|source| TrustError::ReadCa {
                    path: path.clone(),
                    source,
                })?;
                builder.with_root_certificates(root_store(&pem, &path.display().to_string())?)
            }
            Trust::CaPem(pem) => builder.with_root_certificates(root_store(pem, "the given PEM")?),
        };
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key()?)
                .map_err(TrustError::BadClientIdentity)?,
        };
        config.alpn_protocols = vec![umbrald_proto::ALPN.to_vec()];
        Ok(config)
    }
}

fn root_store(pem: &[u8], origin: &str) -> Result<rustls::RootCertStore, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| TrustError::NoCertificates(origin.to_owned()))?;
        roots.add(cert).map_err(TrustError::BadCertificate)?;
    }
    if roots.is_empty() {
        return Err(TrustError::NoCertificates(origin.to_owned()));
    }
    Ok(roots)
}

/// Accepts exactly one end-entity certificate, by fingerprint, and still checks the handshake
/// signature so that only the holder of that certificate's key gets through.
#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    fn new(fingerprint: Fingerprint, provider: &CryptoProvider) -> Self {
        Self {
            fingerprint,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The fingerprint is public data: a plain comparison is fine.
        if Fingerprint::of_der(end_entity.as_ref()) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_identity_needs_a_certificate_and_a_key() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let identity =
            ClientIdentity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).expect("identity");
        assert!(!format!("{identity:?}").contains("KEY"));
        let pinned = Trust::Fingerprint(Fingerprint([1; 32]));
        let config = pinned.client_config_with(Some(&identity)).expect("config");
        assert!(config.client_auth_cert_resolver.has_certs());
        assert!(!pinned
            .client_config()
            .expect("config")
            .client_auth_cert_resolver
            .has_certs());
        assert!(matches!(
            ClientIdentity::from_pem(b"", key_pem.as_bytes()),
            Err(TrustError::NoClientCertificate)
        ));
        assert!(matches!(
            ClientIdentity::from_pem(key_pem.as_bytes(), key_pem.as_bytes()),
            Err(TrustError::NoClientCertificate)
        ));
        assert!(matches!(
            ClientIdentity::from_pem(cert_pem.as_bytes(), cert_pem.as_bytes()),
            Err(TrustError::NoClientKey)
        ));
        let missing = std::path::Path::new("/nonexistent/umbrald-client.pem");
        assert!(matches!(
            ClientIdentity::from_files(missing, missing),
            Err(TrustError::ReadIdentity { .. })
        ));
    }

    #[test]
    fn fingerprint_parses_common_spellings() {
        let hex64 = "ab".repeat(32);
        let plain: Fingerprint = hex64.parse().expect("plain");
        assert_eq!(plain.0, [0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(colons.parse::<Fingerprint>().expect("colons"), plain);
        assert_eq!(
            format!("sha256:{hex64}")
                .parse::<Fingerprint>()
                .expect("prefix"),
            plain
        );
        assert_eq!(plain.to_string(), hex64);
    }

    #[test]
    fn fingerprint_rejects_wrong_length_and_junk() {
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
        assert!("ab".repeat(33).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn ca_pem_without_certificates_is_rejected() {
        let err = Trust::CaPem(b"not a pem".to_vec())
            .client_config()
            .expect_err("no certs");
        assert!(matches!(err, TrustError::NoCertificates(_)));
    }

    #[test]
    fn pinned_config_offers_the_umbrald_alpn() {
        let config = Trust::Fingerprint(Fingerprint([0; 32]))
            .client_config()
            .expect("config");
        assert_eq!(config.alpn_protocols, vec![umbrald_proto::ALPN.to_vec()]);
    }
}
