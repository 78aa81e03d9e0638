//! Talking to a vCenter or ESXi over the vSphere SOAP API: the transport
//! (HTTPS, TLS verification, envelopes, faults), the session (login,
//! renewal, logout), whether the host answers (liveness), the property collector and the conversion of property
//! values to JSON with the vSphere type table. Knows nothing of vPoller tasks.

pub(crate) mod liveness;
pub(crate) mod property;
pub(crate) mod session;
pub(crate) mod soap;
pub(crate) mod tls;
pub(crate) mod typetable;
pub(crate) mod updates;
pub(crate) mod value;
pub(crate) mod xml;

pub use crate::error::VSphereKind;
pub use tls::Verification;

/// What the vSphere modules' tests share.
#[cfg(test)]
pub(crate) mod testing {
    /// A reproducible stream of pseudo-random numbers (xorshift), for
    /// feeding readers input they must not panic on.
    pub fn random_numbers(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Inputs for such a test: `valid` with a few bytes changed, cut at a
    /// random place, or random bytes, `rounds` of them.
    pub fn mangled(valid: &[u8], rounds: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut random = random_numbers(seed);
        (0..rounds)
            .map(|round| {
                let mut bytes = match round % 3 {
                    0 => valid.to_vec(),
                    1 => valid[..(random() as usize) % (valid.len() + 1)].to_vec(),
                    _ => (0..random() % 400).map(|_| random() as u8).collect(),
                };
                for _ in 0..random() % 4 {
                    if !bytes.is_empty() {
                        let at = (random() as usize) % bytes.len();
                        bytes[at] = random() as u8;
                    }
                }
                bytes
            })
            .collect()
    }
}
