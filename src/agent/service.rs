//! The tasks about the vSphere host's services rather than one inventory
//! object: `about`, `event.latest` and `session.get`.

use crate::agent::inventory::service_properties;
use crate::agent::python;
use crate::agent::reply;
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::Agent;
use crate::vsphere::value;
use serde_json::{json, Map, Value};

/// `about`: fields of the host's `AboutInfo` (`fullName` unless the message
/// asks for others).
///
/// It fails while the host is down, as py-vpoller's does (which asks the
/// host every time): users check that vCenter answers with it. The answer
/// comes from the host's last answer while that is fresh (see
/// `vsphere::liveness`) or while the mirror's update stream is alive, so
/// that many `about`s cost few calls.
pub(crate) fn about(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let about = agent
        .connection()?
        .about(agent.mirror_liveness(), msg.deadline)?;
    let mut properties = msg.properties();
    if properties.is_empty() {
        properties.push("fullName".into());
    }
    let data: Map<String, Value> = properties
        .into_iter()
        .map(|name| {
            let found = python::attribute(&about, "AboutInfo", &name);
            (name, found)
        })
        .collect();
    Ok(reply::success_msg_first(
        "Successfully retrieved properties",
        json!([data]),
    ))
}

/// `event.latest`: the message of the event manager's latest event.
pub(crate) fn event_latest(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = service_properties(agent, msg, "eventManager", &["latestEvent"])?;
    let event = content
        .as_ref()
        .and_then(|content| content.get("latestEvent"))
        .map(value::property_value)
        .and_then(|event| event.get("fullFormattedMessage").cloned())
        .unwrap_or(Value::Null);
    Ok(reply::success_msg_first(
        "Successfully retrieved event",
        json!([{"event": event}]),
    ))
}

/// `session.get`: the sessions the host has, their fields as Python text.
pub(crate) fn session_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = match service_properties(agent, msg, "sessionManager", &["sessionList"]) {
        Err(error) if error.is_fault("NoPermission") => {
            return Err(TaskError::refuse(
                "No permissions to view established sessions",
            ));
        }
        other => other?,
    };
    let sessions = content
        .as_ref()
        .and_then(|content| content.get("sessionList"))
        .map(value::property_value)
        .unwrap_or(Value::Array(Vec::new()));
    const FIELDS: [&str; 8] = [
        "key",
        "userName",
        "fullName",
        "loginTime",
        "lastActiveTime",
        "ipAddress",
        "userAgent",
        "callCount",
    ];
    let result: Vec<Value> = sessions
        .as_array()
        .into_iter()
        .flatten()
        .map(|session| {
            let fields: Map<String, Value> = FIELDS
                .iter()
                .map(|field| {
                    let is_time = field.ends_with("Time");
                    (
                        (*field).to_owned(),
                        Value::String(python::str_of(session.get(*field), is_time)),
                    )
                })
                .collect();
            Value::Object(fields)
        })
        .collect();
    Ok(reply::success_msg_first(
        "Successfully retrieved sessions",
        Value::Array(result),
    ))
}
