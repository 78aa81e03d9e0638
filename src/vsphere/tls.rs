//! Certificate verification for the vSphere host: the system's roots (the
//! default), a CA file, a pinned certificate fingerprint, or, only when asked
//! for explicitly, none. Every verifier remembers the fingerprint of the last
//! certificate it refused, so the error can show the user what to pin; and
//! in every mode it refuses a certificate whose RSA key is under 2048 bits
//! with an error that says so ([`WeakKey`]), since ring would refuse that
//! key in the handshake's signature check anyway, where the failure reads
//! as a certificate that is not trusted.

use crate::error::Error;
use crate::sync::Lock;
use ring::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring as ring_provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
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

/// The smallest RSA key ring verifies a signature with.
const MIN_RSA_BITS: usize = 2048;

/// Why a certificate was refused: its RSA key is too small for ring to
/// verify a signature with it. Carried to the transport inside rustls'
/// error, so that no other handshake's outcome can be mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WeakKey {
    /// The size of the key's modulus.
    pub bits: usize,
}

impl WeakKey {
    /// The refusal of `error`, when it is one.
    pub fn of(error: &rustls::Error) -> Option<WeakKey> {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(cause))) => {
                cause.downcast_ref::<WeakKey>().copied()
            }
            _ => None,
        }
    }

    /// The weak key of `certificate`, when it has one.
    fn in_certificate(certificate: &CertificateDer<'_>) -> Option<WeakKey> {
        let parsed = ParsedCertificate::try_from(certificate).ok()?;
        let bits = rsa_modulus_bits(parsed.subject_public_key_info().as_ref())?;
        (bits < MIN_RSA_BITS).then_some(WeakKey { bits })
    }

    /// The key's minimum size, for messages.
    pub fn min_bits() -> usize {
        MIN_RSA_BITS
    }
}

impl std::fmt::Display for WeakKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {}-bit RSA key (at least {MIN_RSA_BITS} bits needed)",
            self.bits
        )
    }
}

impl std::error::Error for WeakKey {}

/// One DER element at the start of `input`: its tag, its contents and what
/// follows it; `None` when `input` does not hold a whole element.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: up to 4 length bytes, so that the length fits a usize.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, after) = rest.split_at(length);
    Some((tag, contents, after))
}

/// The size in bits of the modulus of an RSA SubjectPublicKeyInfo (DER);
/// `None` for other keys and for anything that does not parse.
fn rsa_modulus_bits(spki: &[u8]) -> Option<usize> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OBJECT_IDENTIFIER: u8 = 0x06;
    // 1.2.840.113549.1.1.1
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (SEQUENCE, spki, _) = der_element(spki)? else {
        return None;
    };
    let (SEQUENCE, algorithm, rest) = der_element(spki)? else {
        return None;
    };
    let (OBJECT_IDENTIFIER, RSA_ENCRYPTION, _) = der_element(algorithm)? else {
        return None;
    };
    let (BIT_STRING, key, _) = der_element(rest)? else {
        return None;
    };
    // The bit string's first byte counts unused bits: none in a key.
    let (0, key) = key.split_first()? else {
        return None;
    };
    let (SEQUENCE, rsa_key, _) = der_element(key)? else {
        return None;
    };
    let (INTEGER, modulus, _) = der_element(rsa_key)? else {
        return None;
    };
    let significant = modulus.iter().position(|byte| *byte != 0)?;
    let modulus = &modulus[significant..];
    let leading_bits = 8 - modulus[0].leading_zeros() as usize;
    Some((modulus.len() - 1) * 8 + leading_bits)
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
        if let Some(weak) = WeakKey::in_certificate(end_entity) {
            self.refuse(end_entity);
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(weak)),
            )));
        }
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

    fn certificate(file: &str) -> CertificateDer<'static> {
        let path = format!("{}/tests/certs/{file}", env!("CARGO_MANIFEST_DIR"));
        CertificateDer::from_pem_file(path).unwrap()
    }

    fn spki_of(file: &str) -> Vec<u8> {
        let certificate = certificate(file);
        let parsed = ParsedCertificate::try_from(&certificate).unwrap();
        parsed.subject_public_key_info().as_ref().to_vec()
    }

    #[test]
    fn rsa_key_sizes_are_read_from_the_certificate() {
        assert_eq!(rsa_modulus_bits(&spki_of("weak-rsa-1024.pem")), Some(1024));
        assert_eq!(
            WeakKey::in_certificate(&certificate("weak-rsa-1024.pem")),
            Some(WeakKey { bits: 1024 })
        );
        // An EC key: not RSA, never weak here.
        assert_eq!(rsa_modulus_bits(&spki_of("fake-vsphere.pem")), None);
        assert_eq!(
            WeakKey::in_certificate(&certificate("fake-vsphere.pem")),
            None
        );
        // A 2048-bit modulus (its top bit set, so DER puts a zero byte
        // before it) in long-form lengths.
        let mut modulus = vec![0x02, 0x82, 0x01, 0x01, 0x00, 0x80];
        modulus.extend(std::iter::repeat(0x11).take(255));
        modulus.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut rsa_key = vec![0x30, 0x82, 0x01, 0x0a];
        rsa_key.extend(modulus);
        let mut bits = vec![0x03, 0x82, 0x01, 0x0f, 0x00];
        bits.extend(rsa_key);
        let algorithm = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut spki = vec![0x30, 0x82, 0x01, 0x22];
        spki.extend(algorithm);
        spki.extend(bits);
        assert_eq!(rsa_modulus_bits(&spki), Some(2048));
        assert_eq!(
            WeakKey::of(&rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(WeakKey { bits: 512 }))
            ))),
            Some(WeakKey { bits: 512 })
        );
        assert_eq!(
            WeakKey::of(&rustls::Error::InvalidCertificate(
                CertificateError::BadSignature
            )),
            None
        );
    }

    #[test]
    fn arbitrary_key_bytes_never_panic() {
        let valid = spki_of("weak-rsa-1024.pem");
        for input in crate::vsphere::testing::mangled(&valid, 3000, 0x5eed) {
            let _ = rsa_modulus_bits(&input);
        }
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let error = client_config(&Verification::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
