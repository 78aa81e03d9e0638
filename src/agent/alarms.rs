//! `<kind>.alarm.get`: the alarms triggered on an object.

use crate::agent::inventory::{self, MISSING};
use crate::agent::python;
use crate::agent::reads;
use crate::agent::reply;
use crate::agent::request::{Msg, TaskResult};
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::property;
use crate::vsphere::soap::MoRef;
use crate::vsphere::typetable::Kind;
use crate::vsphere::value;
use crate::vsphere::xml::Node;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The `path` (a name) of each object in `references`, by reference.
fn names_by_reference(
    agent: &Agent,
    msg: &Msg<'_>,
    references: &[MoRef],
    path: &str,
) -> Result<HashMap<MoRef, Value>, Error> {
    let mut by_kind: HashMap<&str, Vec<MoRef>> = HashMap::new();
    for reference in references {
        let list = by_kind.entry(reference.kind.as_str()).or_default();
        if !list.contains(reference) {
            list.push(reference.clone());
        }
    }
    let mut names = HashMap::new();
    for (kind, list) in by_kind {
        reads::retrieve(
            agent,
            kind,
            property::Scope::Objects(&list),
            &[path],
            msg.deadline,
            &mut |object| {
                names.insert(object.obj.clone(), inventory::property_json(&object, path));
                Ok(())
            },
        )?;
    }
    Ok(names)
}

/// `<kind>.alarm.get`: each triggered alarm's key, name, time, entity and
/// state, as py-vpoller lists them.
pub(crate) fn alarm_get(agent: &Agent, msg: &Msg<'_>, kind: &str) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, kind, &["triggeredAlarmState"], MISSING)?;
    let states: Vec<&Node> = content
        .get("triggeredAlarmState")
        .map(|node| node.children.iter().collect())
        .unwrap_or_default();
    let alarm_refs: Vec<MoRef> = states
        .iter()
        .filter_map(|state| state.child("alarm").and_then(MoRef::from_node))
        .collect();
    let entity_refs: Vec<MoRef> = states
        .iter()
        .filter_map(|state| state.child("entity").and_then(MoRef::from_node))
        .collect();
    let alarm_names = names_by_reference(agent, msg, &alarm_refs, "info.name")?;
    let entity_names = names_by_reference(agent, msg, &entity_refs, "name")?;
    let result: Vec<Value> = states
        .iter()
        .map(|state| {
            let fields = value::convert(state, Some(Kind::Data("AlarmState")));
            let name_of = |child: &str, names: &HashMap<MoRef, Value>| {
                state
                    .child(child)
                    .and_then(MoRef::from_node)
                    .and_then(|reference| names.get(&reference).cloned())
                    .unwrap_or(Value::Null)
            };
            json!({
                "key": python::str_of(fields.get("key"), false),
                "info": name_of("alarm", &alarm_names),
                "time": python::str_of(fields.get("time"), true),
                "entity": name_of("entity", &entity_names),
                "acknowledged": fields.get("acknowledged").cloned().unwrap_or(Value::Null),
                "overallStatus": fields.get("overallStatus").cloned().unwrap_or(Value::Null),
                "acknowledgedByUser": fields.get("acknowledgedByUser").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(reply::success(
        "Successfully retrieved alarms",
        Value::Array(result),
    ))
}
