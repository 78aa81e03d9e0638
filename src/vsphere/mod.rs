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
pub(crate) mod value;
pub(crate) mod xml;

pub use crate::error::VSphereKind;
pub use tls::Verification;
