//! CURVE keys: the long-term key pairs of ZeroMQ's CURVE security
//! mechanism (X25519 keys, 32 bytes each), in ZeroMQ's Z85 text form (40
//! characters), read from and written to files.
//!
//! - [`PublicKey`] and [`SecretKey`], parsed from Z85 with a clear error;
//! - [`KeyPair`]: a fresh pair ([`KeyPair::generate`]) or the pair of a
//!   secret key ([`KeyPair::from_secret`]);
//! - key files: [`read_secret_key_file`] (one line of Z85, refused when
//!   others may read it), [`write_secret_key_file`] (mode 0600) and
//!   [`read_allowed_keys`] (one public key per line, `#` comments).
//!
//! The keys are libzmq's: a key made by `zmq_curve_keypair`, pyzmq's
//! `zmq.curve_keypair()` or `vpoller-proxy keygen` works with any of them.

use crate::error::Error;
use std::fmt;
use std::path::Path;

/// The length of a key in bytes.
pub const KEY_SIZE: usize = 32;
/// The length of a key in Z85 text.
pub const KEY_TEXT_SIZE: usize = 40;

/// Z85's alphabet (ZeroMQ RFC 32): the digit of each value 0 to 84.
const Z85: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Z85 text of `bytes`, whose length must be a multiple of 4 (`None`
/// otherwise): every 4 bytes, read as a big-endian number, become 5
/// digits of base 85.
pub fn z85_encode(bytes: &[u8]) -> Option<String> {
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut text = String::with_capacity(bytes.len() / 4 * 5);
    for chunk in bytes.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = Z85[(value % 85) as usize];
            value /= 85;
        }
        text.extend(digits.iter().map(|&digit| char::from(digit)));
    }
    Some(text)
}

/// The bytes of Z85 `text`, or why it is not Z85 (a length that is not a
/// multiple of 5, a character outside the alphabet, a group over 32 bits).
pub fn z85_decode(text: &str) -> Result<Vec<u8>, String> {
    let text = text.as_bytes();
    if text.len() % 5 != 0 {
        return Err(format!(
            "{} characters, not a multiple of 5 (Z85 text)",
            text.len()
        ));
    }
    let mut bytes = Vec::with_capacity(text.len() / 5 * 4);
    for (group, chunk) in text.chunks_exact(5).enumerate() {
        let mut value: u64 = 0;
        for (offset, &character) in chunk.iter().enumerate() {
            let digit = Z85.iter().position(|&z| z == character).ok_or_else(|| {
                let shown = if character.is_ascii_graphic() {
                    format!("'{}'", char::from(character))
                } else {
                    format!("byte {character:#04x}")
                };
                format!(
                    "{shown} at position {} is not a Z85 character",
                    group * 5 + offset + 1
                )
            })?;
            value = value * 85 + digit as u64;
        }
        let value = u32::try_from(value).map_err(|_| {
            format!(
                "characters {} to {} are over 32 bits (not Z85 text)",
                group * 5 + 1,
                group * 5 + 5
            )
        })?;
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    Ok(bytes)
}

/// A key's 32 bytes from its 40 characters of Z85; `what` names the key in
/// the error.
fn key_from_z85(text: &str, what: &str) -> Result<[u8; KEY_SIZE], Error> {
    let text = text.trim();
    if text.len() != KEY_TEXT_SIZE {
        return Err(Error::InvalidArgument(format!(
            "{what} must be {KEY_TEXT_SIZE} characters of Z85, not {}",
            text.chars().count()
        )));
    }
    let bytes =
        z85_decode(text).map_err(|reason| Error::InvalidArgument(format!("{what}: {reason}")))?;
    let mut key = [0u8; KEY_SIZE];
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// A CURVE public key: a server's (which its clients must know) or a
/// client's (which a server may allow).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_SIZE]);

impl PublicKey {
    /// The key of 40 characters of Z85 (surrounding white space ignored).
    ///
    /// ```
    /// let key = vpoller::curve::PublicKey::from_z85("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")?;
    /// assert_eq!(key.to_z85(), "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
    /// assert!(vpoller::curve::PublicKey::from_z85("too short").is_err());
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn from_z85(text: &str) -> Result<PublicKey, Error> {
        key_from_z85(text, "a CURVE public key").map(PublicKey)
    }

    /// The key of 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_SIZE]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_SIZE] {
        &self.0
    }

    /// The key as 40 characters of Z85.
    pub fn to_z85(&self) -> String {
        z85_encode(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_z85())
    }
}

/// A CURVE secret key. It is never shown (`Debug` prints no key bytes)
/// and its bytes are overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_SIZE]);

impl SecretKey {
    /// The key of 40 characters of Z85 (surrounding white space ignored).
    pub fn from_z85(text: &str) -> Result<SecretKey, Error> {
        key_from_z85(text, "a CURVE secret key").map(SecretKey)
    }

    /// The key of 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_SIZE]) -> SecretKey {
        SecretKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_SIZE] {
        &self.0
    }

    /// The key as 40 characters of Z85 (for a key file).
    pub fn to_z85(&self) -> String {
        z85_encode(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A long-term key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    public: PublicKey,
    secret: SecretKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({}, ..)", self.public)
    }
}

/// `N` bytes from the system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Internal("the system's random source failed".into()))?;
    Ok(bytes)
}

impl KeyPair {
    /// A fresh key pair from the system's random source.
    ///
    /// ```
    /// let pair = vpoller::curve::KeyPair::generate()?;
    /// let again = vpoller::curve::KeyPair::from_secret(pair.secret().clone());
    /// assert_eq!(again.public(), pair.public());
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn generate() -> Result<KeyPair, Error> {
        Ok(KeyPair::from_secret(SecretKey(random_bytes()?)))
    }

    /// The pair of `secret`: its public key is computed.
    pub fn from_secret(secret: SecretKey) -> KeyPair {
        let public = crypto_box::SecretKey::from(secret.0).public_key();
        KeyPair {
            public: PublicKey(public.to_bytes()),
            secret,
        }
    }

    /// The pair of a public and a secret key given apart; an error when
    /// they do not belong together.
    pub fn from_keys(public: PublicKey, secret: SecretKey) -> Result<KeyPair, Error> {
        let pair = KeyPair::from_secret(secret);
        if pair.public != public {
            return Err(Error::InvalidArgument(
                "the CURVE public key is not the secret key's".into(),
            ));
        }
        Ok(pair)
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

fn file_error(path: &Path, what: &str, error: std::io::Error) -> Error {
    Error::InvalidArgument(format!("{what} {}: {error}", path.display()))
}

/// The key pair of the secret key in the file at `path`: one line of 40
/// Z85 characters, as [`write_secret_key_file`] writes it (a czmq
/// certificate's `secret-key = "..."` line is taken too). On Unix a file
/// that its group or others may read is refused, as ssh refuses such key
/// files.
pub fn read_secret_key_file(path: &Path) -> Result<KeyPair, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| file_error(path, "cannot read the CURVE secret key file", error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|error| file_error(path, "cannot read the CURVE secret key file", error))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::InvalidArgument(format!(
                "the CURVE secret key file {} may be read by others (mode {:04o}); \
                 make it private with chmod 600",
                path.display(),
                mode & 0o7777
            )));
        }
    }
    let key = secret_key_text(&text).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the CURVE secret key file {} holds no key (one line of 40 Z85 characters)",
            path.display()
        ))
    })?;
    let secret = SecretKey::from_z85(key).map_err(|error| match error {
        Error::InvalidArgument(reason) => {
            Error::InvalidArgument(format!("{}: {reason}", path.display()))
        }
        other => other,
    })?;
    Ok(KeyPair::from_secret(secret))
}

/// The key text of a secret key file: its first line that is not empty
/// nor a comment, or the value of a czmq certificate's `secret-key`.
fn secret_key_text(text: &str) -> Option<&str> {
    let lines = || {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
    };
    for line in lines() {
        if let Some(value) = line.strip_prefix("secret-key") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"'));
        }
    }
    lines().next()
}

/// Writes a fresh secret key to a new file at `path` (mode 0600 on Unix;
/// an existing file is not replaced) and returns its pair.
pub fn write_secret_key_file(path: &Path) -> Result<KeyPair, Error> {
    use std::io::Write;
    let pair = KeyPair::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|error| file_error(path, "cannot create the CURVE secret key file", error))?;
    let mut line = pair.secret.to_z85();
    line.push('\n');
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_all());
    zeroize::Zeroize::zeroize(&mut line);
    if let Err(error) = written {
        let _ = std::fs::remove_file(path);
        return Err(file_error(
            path,
            "cannot write the CURVE secret key file",
            error,
        ));
    }
    Ok(pair)
}

/// The public keys listed in `text`: one Z85 key per line, optionally
/// followed by white space and a `#` comment; empty lines and comment
/// lines are skipped (`#` is a Z85 digit too, but never a key's first). An
/// error names the line.
///
/// ```
/// let keys = vpoller::curve::parse_allowed_keys(
///     "# monitoring\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7  # zabbix01\n",
/// )?;
/// assert_eq!(keys.len(), 1);
/// assert!(vpoller::curve::parse_allowed_keys("not a key\n").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn parse_allowed_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        let key = PublicKey::from_z85(first);
        let rest_is_comment = words.next().map_or(true, |word| word.starts_with('#'));
        match key {
            Ok(key) if rest_is_comment => keys.push(key),
            _ if line.starts_with('#') => {}
            Ok(_) => {
                return Err(format!(
                    "line {}: one key per line, then only a # comment",
                    number + 1
                ))
            }
            Err(Error::InvalidArgument(reason)) => {
                return Err(format!("line {}: {reason}", number + 1))
            }
            Err(other) => return Err(format!("line {}: {other}", number + 1)),
        }
    }
    Ok(keys)
}

/// The public keys listed in the file at `path` (see
/// [`parse_allowed_keys`]).
pub fn read_allowed_keys(path: &Path) -> Result<Vec<PublicKey>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| file_error(path, "cannot read the CURVE allowed keys file", error))?;
    parse_allowed_keys(&text)
        .map_err(|reason| Error::InvalidArgument(format!("{}: {reason}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z85_matches_the_specification() {
        // ZeroMQ RFC 32's test vector.
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(z85_encode(&bytes).unwrap(), "HelloWorld");
        assert_eq!(z85_decode("HelloWorld").unwrap(), bytes);
        assert_eq!(z85_encode(&[1, 2, 3]), None);
        assert!(z85_decode("Hello").is_ok());
        assert!(z85_decode("Hell").unwrap_err().contains("multiple of 5"));
        assert!(z85_decode("Hell,")
            .unwrap_err()
            .contains("',' at position 5"));
        assert!(z85_decode("Hell\u{7f}").unwrap_err().contains("byte 0x7f"));
        // "%nSc0" is 0xffffffff; one more is over 32 bits.
        assert_eq!(z85_decode("%nSc0").unwrap(), [0xff; 4]);
        assert!(z85_decode("%nSc1").unwrap_err().contains("over 32 bits"));
        assert!(z85_decode("#####").is_err());
    }

    #[test]
    fn libzmq_test_keys_pair_up() {
        // libzmq's test suite's server pair.
        let public = PublicKey::from_z85("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7").unwrap();
        let secret = SecretKey::from_z85("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
        let pair = KeyPair::from_keys(public, secret.clone()).unwrap();
        assert_eq!(pair.public(), &public);
        assert_eq!(format!("{pair:?}"), format!("KeyPair({public}, ..)"));
        assert_eq!(format!("{secret:?}"), "SecretKey(..)");
        let other = KeyPair::generate().unwrap();
        assert!(KeyPair::from_keys(*other.public(), secret).is_err());
        assert_ne!(other.public(), &public);
        let error = PublicKey::from_z85("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf").unwrap_err();
        assert!(error.to_string().contains("40 characters"), "{error}");
    }

    #[test]
    fn key_files_round_trip_and_private_ones_only() {
        let dir = std::env::temp_dir().join(format!("vpoller-curve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.key");
        let pair = write_secret_key_file(&path).unwrap();
        assert_eq!(read_secret_key_file(&path).unwrap(), pair);
        let again = write_secret_key_file(&path).unwrap_err().to_string();
        assert!(again.contains("cannot create"), "{again}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let refused = read_secret_key_file(&path).unwrap_err().to_string();
            assert!(
                refused.contains("may be read by others (mode 0644)"),
                "{refused}"
            );
        }
        let cert = dir.join("czmq.key_secret");
        std::fs::write(
            &cert,
            format!(
                "#   ZeroMQ CURVE **Secret** Certificate\ncurve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
                pair.public(),
                pair.secret().to_z85()
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(read_secret_key_file(&cert).unwrap(), pair);
        let allowed = dir.join("allowed");
        std::fs::write(
            &allowed,
            format!(
                "# clients\n\n{}  # zabbix01\n  {}\n",
                pair.public(),
                PublicKey([0; 32])
            ),
        )
        .unwrap();
        assert_eq!(
            read_allowed_keys(&allowed).unwrap(),
            vec![*pair.public(), PublicKey([0; 32])]
        );
        std::fs::write(&allowed, "# one bad key\nnot a key\n").unwrap();
        let bad = read_allowed_keys(&allowed).unwrap_err().to_string();
        assert!(bad.contains("line 2"), "{bad}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
