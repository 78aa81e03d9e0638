//! Certificate verification for the vSphere host: the system's roots (the
//! default), a CA file, a pinned certificate fingerprint, or, only when asked
//! for explicitly, none. Every verifier remembers the fingerprint of the last
//! certificate it refused, so the error can show the user what to pin.

use crate::error::Error;
use crate::sync::Lock;
use ring::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring as ring_provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the vSphere host's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verification {
    /// Against the system's trusted roots (`/etc/ssl/certs` on Debian), with
    /// the host name. The default.
    #[default]
    SystemRoots,
    /// Against the CA certificates in a PEM file, with the host name.
    CaFile(PathBuf),
    /// The server certificate's SHA-256 (64 hex digits) or SHA-1 (40 hex
    /// digits, as vSphere shows thumbprints) fingerprint must match; colons
    /// and case do not matter. Expiry and host name are not checked.
    Fingerprint(String),
    /// No check at all. Anyone on the path can read the password.
    Insecure,
}

/// The fingerprint of the certificate refused last, shared with the verifier.
pub(crate) type RefusedFingerprint = Arc<Mutex<Option<String>>>;

/// The rustls configuration for `verification`, and where its verifier
/// records a refused certificate's fingerprint.
pub(crate) fn client_config(
    verification: &Verification,
) -> Result<(Arc<rustls::ClientConfig>, RefusedFingerprint), Error> {
    let provider = Arc::new(ring_provider::default_provider());
    let refused: RefusedFingerprint = Arc::default();
    let check = match verification {
        Verification::SystemRoots => {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(Error::InvalidArgument(
                    "no trusted root certificates found on this system: give a CA file \
                     (ca_file) or pin the certificate's fingerprint (fingerprint)"
                        .into(),
                ));
            }
            webpki(roots, &provider)?
        }
        Verification::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path).map_err(|error| {
                Error::InvalidArgument(format!("cannot read CA file {}: {error}", path.display()))
            })?;
            for certificate in certificates {
                let certificate = certificate.map_err(|error| {
                    Error::InvalidArgument(format!("bad CA file {}: {error}", path.display()))
                })?;
                roots.add(certificate).map_err(|error| {
                    Error::InvalidArgument(format!("bad CA file {}: {error}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            webpki(roots, &provider)?
        }
        Verification::Fingerprint(text) => Check::Pinned(parse_fingerprint(text)?),
        Verification::Insecure => Check::Nothing,
    };
    let verifier = Arc::new(Verifier {
        check,
        provider: provider.clone(),
        refused: refused.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Internal(format!("TLS set-up: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), refused))
}

fn webpki(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Check, Error> {
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| Error::InvalidArgument(format!("unusable CA certificates: {error}")))?;
    Ok(Check::Chain(inner))
}

/// Accepts 64 (SHA-256) or 40 (SHA-1) hex digits, with or without colons
/// (any other character, ASCII or not, is refused).
fn parse_fingerprint(text: &str) -> Result<Vec<u8>, Error> {
    let digits: Vec<u8> = text
        .chars()
        .filter(|character| *character != ':' && !character.is_whitespace())
        .map(|character| character.to_digit(16).and_then(|digit| u8::try_from(digit).ok()))
        .collect::<Option<_>>()
        .filter(|digits: &Vec<u8>| digits.len() == 64 || digits.len() == 40)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "fingerprint {text:?} is not a SHA-256 (64 hex digits) or SHA-1 (40 hex digits) fingerprint"
            ))
        })?;
    Ok(digits
        .chunks(2)
        .map(|pair| (pair[0] << 4) | pair[1])
        .collect())
}

impl Verification {
    /// Checks the settings without connecting: the fingerprint's form, the
    /// CA file's certificates, that the system has roots.
    pub fn check(&self) -> Result<(), Error> {
        client_config(self).map(drop)
    }
}

/// The SHA-256 fingerprint of a certificate, as `AB:CD:...`.
pub(crate) fn sha256_fingerprint(certificate: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, certificate);
    hash.as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What is checked of the server certificate.
#[derive(Debug)]
enum Check {
    /// The chain up to trusted roots (the system's or a CA file's), and the
    /// host name.
    Chain(Arc<WebPkiServerVerifier>),
    /// The certificate's SHA-256 (32 bytes) or SHA-1 (20 bytes) digest.
    Pinned(Vec<u8>),
    /// Nothing (asked for explicitly).
    Nothing,
}

/// The verifier: the certificate check, the handshake signatures (always,
/// so the server must hold the key of the certificate it shows), and the
/// fingerprint of the certificate it refused last.
#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
    refused: RefusedFingerprint,
}

impl Verifier {
    fn refuse(&self, certificate: &CertificateDer<'_>) {
        let mut slot = self.refused.locked();
        *slot = Some(sha256_fingerprint(certificate.as_ref()));
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.check {
            Check::Chain(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Check::Pinned(expected) => {
                let algorithm = if expected.len() == 20 {
                    &digest::SHA1_FOR_LEGACY_USE_ONLY
                } else {
                    &digest::SHA256
                };
                if digest::digest(algorithm, end_entity.as_ref()).as_ref() == expected.as_slice() {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::ApplicationVerificationFailure,
                    ))
                }
            }
            Check::Nothing => Ok(ServerCertVerified::assertion()),
        };
        if verdict.is_err() {
            self.refuse(end_entity);
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let sha256 = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&sha256).unwrap().len(), 32);
        let with_colons = vec!["0F"; 20].join(":");
        assert_eq!(parse_fingerprint(&with_colons).unwrap(), vec![0x0f; 20]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        // 64 bytes, not all ASCII: refused, not a panic on a char boundary.
        let mixed = format!("a{}b", "é".repeat(31));
        assert_eq!(mixed.len(), 64);
        assert!(parse_fingerprint(&mixed).is_err());
        assert!(parse_fingerprint(&format!("{}é", "a".repeat(38))).is_err());
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let error = client_config(&Verification::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
