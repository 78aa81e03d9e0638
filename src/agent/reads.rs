//! The one place that chooses where a read of properties is answered: from
//! the mirror when it holds them and its stream is alive, from vCenter
//! otherwise (and then the mirror takes the paths on). Tasks read through
//! here, never through the property collector themselves.

use crate::agent::mirror::key_property;
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::property::{self, ObjectContent, Scope};
use crate::vsphere::soap::MoRef;
use std::time::Instant;

/// Reads `paths` of the objects of managed type `kind` in `scope`, calling
/// `each` per object in the server's order.
pub(crate) fn retrieve(
    agent: &Agent,
    kind: &str,
    scope: Scope<'_>,
    paths: &[&str],
    deadline: Instant,
    each: &mut dyn FnMut(ObjectContent) -> Result<(), Error>,
) -> Result<(), Error> {
    let connection = agent.connection()?;
    let mirror = agent.mirror_on();
    if mirror {
        let references = match scope {
            Scope::All => None,
            Scope::Objects(references) => Some(references),
        };
        if let Some(found) = agent.mirror.read(&connection, kind, references, paths) {
            for content in found {
                each(content)?;
            }
            return Ok(());
        }
    }
    property::retrieve(&connection, kind, scope, paths, deadline, each)?;
    if mirror {
        agent
            .mirror
            .asked(&connection, kind, paths, key_property(kind));
    }
    Ok(())
}

/// Reads `paths` of one object (any managed object: those the mirror does
/// not hold, such as the service objects, are read from vCenter); `None`
/// when the server left it out.
pub(crate) fn object_properties(
    agent: &Agent,
    object: &MoRef,
    paths: &[&str],
    deadline: Instant,
) -> Result<Option<ObjectContent>, Error> {
    let mut found = None;
    retrieve(
        agent,
        &object.kind,
        Scope::Objects(std::slice::from_ref(object)),
        paths,
        deadline,
        &mut |content| {
            found = Some(content);
            Ok(())
        },
    )?;
    Ok(found)
}

/// The first object of `kind` whose `key` property is `value`; the flag
/// says whether the answer came from the lookup cache (and may be stale:
/// the caller checks it). The mirror's index is current, never stale.
pub(crate) fn find(
    agent: &Agent,
    kind: &str,
    key: &'static str,
    value: &str,
    deadline: Instant,
) -> Result<(Option<MoRef>, bool), Error> {
    let connection = agent.connection()?;
    let mirror = agent.mirror_on();
    if mirror {
        if let Some(found) = agent.mirror.find(&connection, kind, key, value) {
            return Ok((found, false));
        }
    }
    let found = agent.cache.find(&connection, kind, key, value, deadline)?;
    if mirror {
        agent.mirror.asked(&connection, kind, &[], key);
    }
    Ok(found)
}
