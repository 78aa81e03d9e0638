//! The building blocks of most tasks: discover every object of a type, find
//! one object by name, read its properties or those of a service. The other
//! task families build on this one.

use crate::agent::reads;
use crate::agent::reply::{self, Answer, ListWriter, Reply};
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::Agent;
use crate::error::{Error, VSphereKind};
use crate::vsphere::property::{ObjectContent, Scope};
use crate::vsphere::soap::MoRef;
use crate::vsphere::value;
use serde_json::Value;

/// py-vpoller's failure text for a missing object, most tasks' spelling.
pub(crate) const MISSING: &str = "Cannot find object ";
/// The performance and snapshot tasks' spelling.
pub(crate) const MISSING_COLON: &str = "Cannot find object: ";

pub(crate) use crate::agent::mirror::key_property;

/// The properties as a JSON object, in the server's order.
pub(crate) fn to_json(content: &ObjectContent) -> Reply {
    content
        .props
        .iter()
        .map(|(name, node)| (name.clone(), value::property_value(node)))
        .collect()
}

/// `<kind>.discover`: `name` and the requested properties of every object,
/// written into the reply text as each object arrives.
pub(crate) fn discover(agent: &Agent, msg: &Msg<'_>, kind: &str) -> TaskResult<Answer> {
    let mut paths = vec![String::from("name")];
    paths.extend(msg.properties());
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut result = ListWriter::new("Successfully discovered objects");
    reads::retrieve(
        agent,
        kind,
        Scope::All,
        &paths,
        msg.deadline,
        &mut |object| {
            result.push(&Value::Object(to_json(&object)));
            Ok(())
        },
    )
    .map_err(|error| cannot_collect(error.into()))?;
    Ok(Answer::Text(result.finish()))
}

/// `<kind>.get`: the object named in the message, with `name` (and a
/// datastore's `info.url`) and the requested properties.
pub(crate) fn get(agent: &Agent, msg: &Msg<'_>, kind: &str) -> TaskResult<Value> {
    let mut paths = vec![String::from("name")];
    if kind == "Datastore" {
        paths.push(String::from("info.url"));
    }
    paths.extend(msg.properties());
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let content = lookup(agent, msg, kind, &paths, MISSING).map_err(cannot_collect)?;
    Ok(reply::success(
        "Successfully retrieved object properties",
        Value::Array(vec![Value::Object(to_json(&content))]),
    ))
}

/// The discover and get tasks answer a fault of the property collector (an
/// unknown property path, ...) with py-vpoller's words for it.
fn cannot_collect(error: TaskError) -> TaskError {
    match error {
        TaskError::Failed(Error::VSphere {
            kind: VSphereKind::Fault { name, text },
            ..
        }) => TaskError::refuse(format!(
            "Cannot collect properties: {}",
            if text.is_empty() { name } else { text }
        )),
        other => other,
    }
}

/// Looks up the message's object of `kind` with `paths`; when there is none,
/// the failure reply `<missing><name>` ([`MISSING`] or [`MISSING_COLON`], as
/// py-vpoller's task writes it).
pub(crate) fn lookup(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    paths: &[&str],
    missing: &str,
) -> TaskResult<ObjectContent> {
    object(agent, msg, kind, paths)?
        .ok_or_else(|| TaskError::refuse(format!("{missing}{}", msg.name())))
}

/// Finds the object of `kind` the message names and reads `paths` of it;
/// `None` when there is no such object. The object's key property is read
/// too, so that an object renamed since it was looked up is noticed: it no
/// longer answers to its old name.
fn object(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    paths: &[&str],
) -> Result<Option<ObjectContent>, Error> {
    let name = msg.name();
    let key = key_property(kind);
    let mut read_paths = paths.to_vec();
    let key_asked = paths.contains(&key);
    if !key_asked {
        read_paths.push(key);
    }
    // Twice at most: a cached object that is gone or renamed is looked up
    // afresh.
    for _ in 0..2 {
        let (found, cached) = reads::find(agent, kind, key, &name, msg.deadline)?;
        let Some(reference) = found else {
            return Ok(None);
        };
        let content = match reads::object_properties(agent, &reference, &read_paths, msg.deadline) {
            Ok(content) => content,
            Err(error) if error.is_fault("ManagedObjectNotFound") => None,
            Err(other) => return Err(other),
        };
        let content = content.filter(|content| {
            content
                .get(key)
                .is_some_and(|value| value.children.is_empty() && value.text == name)
        });
        match content {
            Some(mut content) => {
                if !key_asked {
                    if let Some(at) = content.props.iter().rposition(|(path, _)| path == key) {
                        content.props.remove(at);
                    }
                }
                return Ok(Some(content));
            }
            None if cached => agent.cache.forget(kind, key, &name),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// `[{"name": ...}, ...]` (with more paths when given) of the objects in
/// `references` of managed type `kind`, in the server's order.
pub(crate) fn properties_of(
    agent: &Agent,
    kind: &str,
    references: &[MoRef],
    paths: &[&str],
    msg: &Msg<'_>,
) -> Result<Vec<Value>, Error> {
    let mut result = Vec::with_capacity(references.len());
    reads::retrieve(
        agent,
        kind,
        Scope::Objects(references),
        paths,
        msg.deadline,
        &mut |object| {
            result.push(Value::Object(to_json(&object)));
            Ok(())
        },
    )?;
    Ok(result)
}

/// The managed object references in a property value (one, or an array).
pub(crate) fn references(content: &ObjectContent, path: &str) -> Vec<MoRef> {
    let Some(node) = content.get(path) else {
        return Vec::new();
    };
    if node.type_attr.is_some() {
        return MoRef::from_node(node).into_iter().collect();
    }
    node.children.iter().filter_map(MoRef::from_node).collect()
}

/// The value of a property as JSON (`Null` when the server left it out).
pub(crate) fn property_json(content: &ObjectContent, path: &str) -> Value {
    content
        .get(path)
        .map(value::property_value)
        .unwrap_or(Value::Null)
}

/// A service of the session's content (`eventManager`, ...), read with `paths`.
pub(crate) fn service_properties(
    agent: &Agent,
    msg: &Msg<'_>,
    service: &str,
    paths: &[&str],
) -> Result<Option<ObjectContent>, Error> {
    let session = agent.connection()?.session(msg.deadline)?;
    let reference = session.service(service)?;
    reads::object_properties(agent, &reference, paths, msg.deadline)
}
