//! The building blocks of most tasks: discover every object of a type, find
//! one object by name, and read its properties.

use crate::agent::reply::{self, Answer, ListWriter, Reply};
use crate::agent::tasks::Msg;
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::property::{self, ObjectContent, Scope};
use crate::vsphere::soap::MoRef;
use crate::vsphere::value;
use serde_json::Value;

/// The property that identifies an object of `kind` in a request: datastores
/// are named by their URL (`info.url`), everything else by `name`.
pub(crate) fn key_property(kind: &str) -> &'static str {
    if kind == "Datastore" {
        "info.url"
    } else {
        "name"
    }
}

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
pub(crate) fn discover(agent: &Agent, msg: &Msg<'_>, kind: &str) -> Result<Answer, Error> {
    let mut paths = vec![String::from("name")];
    paths.extend(msg.properties());
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let connection = agent.connection()?;
    let mut result = ListWriter::new("Successfully discovered objects");
    let collected = property::retrieve(
        &connection,
        kind,
        Scope::All,
        &paths,
        msg.deadline,
        &mut |object| {
            result.push(&Value::Object(to_json(&object)));
            Ok(())
        },
    );
    match collected {
        Ok(()) => Ok(Answer::Text(result.finish())),
        Err(Error::Fault { message, fault }) => Ok(Answer::Json(reply::failure(format!(
            "Cannot collect properties: {}",
            if message.is_empty() { fault } else { message }
        )))),
        Err(other) => Err(other),
    }
}

/// `<kind>.get`: the object named in the message, with `name` (and a
/// datastore's `info.url`) and the requested properties.
pub(crate) fn get(agent: &Agent, msg: &Msg<'_>, kind: &str) -> Result<Value, Error> {
    let mut paths = vec![String::from("name")];
    if kind == "Datastore" {
        paths.push(String::from("info.url"));
    }
    paths.extend(msg.properties());
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    match object(agent, msg, kind, &paths) {
        Ok(Found::Object(content)) => Ok(reply::success(
            "Successfully retrieved object properties",
            Value::Array(vec![Value::Object(to_json(&content))]),
        )),
        Ok(Found::Missing(name)) => Ok(reply::failure(format!("Cannot find object {name}"))),
        Err(Error::Fault { message, fault }) => Ok(reply::failure(format!(
            "Cannot collect properties: {}",
            if message.is_empty() { fault } else { message }
        ))),
        Err(other) => Err(other),
    }
}

/// An object looked up by the message's `name`.
pub(crate) enum Found {
    Object(ObjectContent),
    /// No such object; the name as asked for.
    Missing(String),
}

/// Looks up the message's object of `kind` with `paths`; when there is none,
/// the failure reply `<missing><name>` (py-vpoller's tasks write "Cannot find
/// object " or "Cannot find object: ").
pub(crate) fn lookup(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    paths: &[&str],
    missing: &str,
) -> Result<Result<ObjectContent, Value>, Error> {
    Ok(match object(agent, msg, kind, paths)? {
        Found::Object(content) => Ok(content),
        Found::Missing(name) => Err(reply::failure(format!("{missing}{name}"))),
    })
}

/// Finds the object of `kind` the message names and reads `paths` of it.
pub(crate) fn object(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    paths: &[&str],
) -> Result<Found, Error> {
    let name = msg.name();
    let key = key_property(kind);
    let connection = agent.connection()?;
    // Twice at most: a cached object that is gone is looked up afresh.
    for _ in 0..2 {
        let (found, cached) = agent
            .cache
            .find(&connection, kind, key, &name, msg.deadline)?;
        let Some(reference) = found else {
            return Ok(Found::Missing(name));
        };
        let content =
            match property::object_properties(&connection, &reference, paths, msg.deadline) {
                Ok(content) => content,
                Err(Error::Fault { fault, .. }) if fault == "ManagedObjectNotFound" => None,
                Err(other) => return Err(other),
            };
        match content {
            Some(content) => return Ok(Found::Object(content)),
            None if cached => agent.cache.forget(kind, key, &name),
            None => return Ok(Found::Missing(name)),
        }
    }
    Ok(Found::Missing(name))
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
    let connection = agent.connection()?;
    let mut result = Vec::with_capacity(references.len());
    property::retrieve(
        &connection,
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
