//! The tasks with shapes of their own: `about`, `event.latest`,
//! `session.get`, alarms, guest disks and networks, snapshots, guest
//! processes, CPU usage and vSAN health.

use crate::agent::inventory;
use crate::agent::reply;
use crate::agent::tasks::Msg;
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::property::{self, ObjectContent};
use crate::vsphere::session::Session;
use crate::vsphere::soap::{element, MoRef};
use crate::vsphere::typetable::{self, Kind};
use crate::vsphere::value;
use crate::vsphere::xml::Node;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// What py-vpoller puts where an object lacks a requested attribute.
const NULL_TEXT: &str = "(null)";

/// Python's `getattr(item, field, "(null)")` on the pyVmomi object of data
/// type `type_name` that `item` renders: the value when set; an unset field
/// of the type is `None`, or `[]` for an array; a field the type does not
/// have is "(null)".
fn python_attribute(item: &Value, type_name: &str, field: &str) -> Value {
    if let Some(value) = item.get(field) {
        return value.clone();
    }
    match typetable::field_type(type_name, field) {
        Some(declared) if declared.array => Value::Array(Vec::new()),
        Some(_) => Value::Null,
        None => NULL_TEXT.into(),
    }
}

/// A service of the session's content, read with `paths`.
fn service_properties(
    agent: &Agent,
    msg: &Msg<'_>,
    service: &str,
    paths: &[&str],
) -> Result<Option<ObjectContent>, Error> {
    let connection = agent.connection()?;
    let session = connection.session(msg.deadline)?;
    let reference = session.service(service)?;
    property::object_properties(&connection, &reference, paths, msg.deadline)
}

/// Python's `str()` of a datetime that pyVmomi parsed from ISO 8601 text:
/// `2020-01-01T10:11:12.5Z` becomes `2020-01-01 10:11:12.500000+00:00`.
pub(crate) fn python_datetime(iso: &str) -> String {
    let Some((date, rest)) = iso.split_once('T') else {
        return iso.to_owned();
    };
    let zone_at = rest
        .find(['Z', '+'])
        .or_else(|| rest.rfind('-'))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let zone = match zone {
        "" | "Z" => "+00:00",
        other => other,
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut micros: String = fraction.chars().take(6).collect();
    while micros.len() < 6 {
        micros.push('0');
    }
    if micros.chars().all(|digit| digit == '0') {
        format!("{date} {clock}{zone}")
    } else {
        format!("{date} {clock}.{micros}{zone}")
    }
}

/// Python's `str()` of a value pyVmomi would hold.
fn python_str(value: Option<&Value>, datetime: bool) -> String {
    match value {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(text)) if datetime => python_datetime(text),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(flag)) => if *flag { "True" } else { "False" }.into(),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn about(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let connection = agent.connection()?;
    let session = connection.session(msg.deadline)?;
    let about = session.about.get_or_init(|| {
        session
            .content
            .child("about")
            .map(|node| value::convert(node, Some(Kind::Data("AboutInfo"))))
            .unwrap_or(Value::Null)
    });
    let mut properties = msg.properties();
    if properties.is_empty() {
        properties.push("fullName".into());
    }
    let data: Map<String, Value> = properties
        .into_iter()
        .map(|name| {
            let found = python_attribute(about, "AboutInfo", &name);
            (name, found)
        })
        .collect();
    Ok(reply::success_msg_first(
        "Successfully retrieved properties",
        json!([data]),
    ))
}

pub(crate) fn event_latest(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
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

pub(crate) fn session_get(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let content = match service_properties(agent, msg, "sessionManager", &["sessionList"]) {
        Err(Error::Fault { fault, .. }) if fault == "NoPermission" => {
            return Ok(reply::failure(
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
                    let datetime = field.ends_with("Time");
                    (
                        (*field).to_owned(),
                        Value::String(python_str(session.get(*field), datetime)),
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

/// The `name` of each object in `references`, by reference.
fn names_by_reference(
    agent: &Agent,
    msg: &Msg<'_>,
    references: &[MoRef],
    path: &str,
) -> Result<HashMap<MoRef, Value>, Error> {
    let connection = agent.connection()?;
    let mut by_kind: HashMap<&str, Vec<MoRef>> = HashMap::new();
    for reference in references {
        let list = by_kind.entry(reference.kind.as_str()).or_default();
        if !list.contains(reference) {
            list.push(reference.clone());
        }
    }
    let mut names = HashMap::new();
    for (kind, list) in by_kind {
        property::retrieve(
            &connection,
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

pub(crate) fn alarm_get(agent: &Agent, msg: &Msg<'_>, kind: &str) -> Result<Value, Error> {
    let content = match inventory::lookup(
        agent,
        msg,
        kind,
        &["triggeredAlarmState"],
        "Cannot find object ",
    )? {
        Ok(content) => content,
        Err(reply) => return Ok(reply),
    };
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
                "key": python_str(fields.get("key"), false),
                "info": name_of("alarm", &alarm_names),
                "time": python_str(fields.get("time"), true),
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

/// `[{first: ..., <requested>: ...}]` of the items (of data type
/// `type_name`) of an array property, as py-vpoller's `getattr` picks them.
fn pick_fields(items: &Value, type_name: &str, first: &str, msg: &Msg<'_>) -> Vec<Value> {
    let mut wanted = vec![first.to_owned()];
    wanted.extend(msg.properties());
    items
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let fields: Map<String, Value> = wanted
                .iter()
                .map(|name| (name.clone(), python_attribute(item, type_name, name)))
                .collect();
            Value::Object(fields)
        })
        .collect()
}

fn guest_disks(agent: &Agent, msg: &Msg<'_>) -> Result<Result<(Value, Vec<Value>), Value>, Error> {
    let content = match inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "guest.disk"],
        "Cannot find object ",
    )? {
        Ok(content) => content,
        Err(reply) => return Ok(Err(reply)),
    };
    let disks = inventory::property_json(&content, "guest.disk");
    Ok(Ok((
        inventory::property_json(&content, "name"),
        pick_fields(&disks, "GuestDiskInfo", "diskPath", msg),
    )))
}

pub(crate) fn vm_disk_discover(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    Ok(match guest_disks(agent, msg)? {
        Ok((name, disks)) => reply::success(
            "Successfully discovered objects",
            json!([{"name": name, "disk": disks}]),
        ),
        Err(reply) => reply,
    })
}

pub(crate) fn vm_disk_get(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let (name, disks) = match guest_disks(agent, msg)? {
        Ok(found) => found,
        Err(reply) => return Ok(reply),
    };
    let Some(wanted) = msg.truthy("key").map(|key| {
        key.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| key.to_string())
    }) else {
        return Ok(reply::success(
            "Successfully discovered objects",
            json!([{"name": name, "disk": disks}]),
        ));
    };
    match disks
        .into_iter()
        .find(|disk| disk.get("diskPath").and_then(Value::as_str) == Some(wanted.as_str()))
    {
        Some(disk) => Ok(reply::success(
            "Successfully retrieved properties",
            json!([{"name": msg.name(), "disk": disk}]),
        )),
        None => Ok(reply::failure(format!(
            "Unable to find guest disk {wanted}"
        ))),
    }
}

pub(crate) fn vm_guest_net_get(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let content = match inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "guest.net"],
        "Cannot find object ",
    )? {
        Ok(content) => content,
        Err(reply) => return Ok(reply),
    };
    let nets = inventory::property_json(&content, "guest.net");
    let result = json!({"name": inventory::property_json(&content, "name"), "net": pick_fields(&nets, "GuestNicInfo", "network", msg)});
    Ok(reply::success("Successfully retrieved properties", result))
}

pub(crate) fn vm_snapshot_get(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let content = match inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["snapshot"],
        "Cannot find object: ",
    )? {
        Ok(content) => content,
        Err(reply) => return Ok(reply),
    };
    let snapshot = inventory::property_json(&content, "snapshot");
    let roots = snapshot
        .get("rootSnapshotList")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if roots.is_empty() {
        return Ok(reply::failure(format!(
            "No snapshots found for: {}",
            msg.name()
        )));
    }
    // Every snapshot of the tree, parents before their children.
    let mut pending: Vec<Value> = roots.into_iter().rev().collect();
    let mut result = Vec::new();
    while let Some(tree) = pending.pop() {
        if let Some(children) = tree.get("childSnapshotList").and_then(Value::as_array) {
            pending.extend(children.iter().rev().cloned());
        }
        result.push(json!({
            "createTime": python_str(tree.get("createTime"), true),
            "description": tree.get("description").cloned().unwrap_or(Value::Null),
            "id": tree.get("id").cloned().unwrap_or(Value::Null),
            "name": tree.get("name").cloned().unwrap_or(Value::Null),
            "quiesced": python_str(tree.get("quiesced"), false),
            "state": tree.get("state").cloned().unwrap_or(Value::Null),
        }));
    }
    Ok(reply::success(
        "Successfully retrieved snapshots",
        Value::Array(result),
    ))
}

pub(crate) fn vm_process_get(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let content = match inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "guest.toolsRunningStatus"],
        "Cannot find object ",
    )? {
        Ok(content) => content,
        Err(reply) => return Ok(reply),
    };
    if inventory::property_json(&content, "guest.toolsRunningStatus") != "guestToolsRunning" {
        return Ok(reply::failure(format!(
            "{} is not running VMware Tools",
            msg.name()
        )));
    }
    let (Some(username), Some(password)) = (msg.truthy("username"), msg.truthy("password")) else {
        return Ok(reply::failure(format!(
            "Need username and password for authentication in guest system {}",
            msg.name()
        )));
    };
    let text = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string())
    };
    let (username, password) = (text(username), text(password));
    let connection = agent.connection()?;
    let operations = service_properties(agent, msg, "guestOperationsManager", &["processManager"])?;
    let Some(manager) = operations
        .as_ref()
        .map(|content| inventory::references(content, "processManager"))
        .and_then(|list| list.into_iter().next())
    else {
        return Ok(reply::failure(
            "Cannot get guest processes: no guest process manager on this host",
        ));
    };
    let vm = content.obj.clone();
    let args = move |_: &Session| {
        let mut out = String::new();
        vm.write(&mut out, "vm");
        out.push_str("<auth xsi:type=\"NamePasswordAuthentication\"><interactiveSession>false</interactiveSession>");
        element(&mut out, "username", &username);
        element(&mut out, "password", &password);
        out.push_str("</auth>");
        Ok(out)
    };
    let processes = match connection.call(
        "ListProcessesInGuest",
        &|_: &Session| Ok(manager.clone()),
        &args,
        msg.deadline,
    ) {
        Ok(processes) => processes,
        Err(error @ (Error::Fault { .. } | Error::VSphere(_))) => {
            return Ok(reply::failure(format!(
                "Cannot get guest processes: {error}"
            )));
        }
        Err(other) => return Err(other),
    };
    let items = Value::Array(
        processes
            .iter()
            .map(|node| value::convert(node, Some(Kind::Data("GuestProcessInfo"))))
            .collect(),
    );
    Ok(reply::success(
        "Successfully retrieved properties",
        Value::Array(pick_fields(&items, "GuestProcessInfo", "cmdLine", msg)),
    ))
}

pub(crate) fn vm_cpu_usage_percent(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    const REQUIRED: [&str; 5] = [
        "name",
        "runtime.host",
        "summary.quickStats.overallCpuUsage",
        "config.hardware.numCoresPerSocket",
        "config.hardware.numCPU",
    ];
    let content = match inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &REQUIRED,
        "Cannot find object ",
    )? {
        Ok(content) => content,
        Err(reply) => return Ok(reply),
    };
    if !REQUIRED.iter().all(|path| content.get(path).is_some()) {
        return Ok(reply::failure("Unable to retrieve required properties"));
    }
    let number = |path: &str| {
        inventory::property_json(&content, path)
            .as_f64()
            .unwrap_or(0.0)
    };
    let host = inventory::references(&content, "runtime.host");
    let hertz =
        inventory::properties_of(agent, "HostSystem", &host, &["hardware.cpuInfo.hz"], msg)?
            .first()
            .and_then(|entry| entry.get("hardware.cpuInfo.hz"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
    let capacity =
        hertz * number("config.hardware.numCoresPerSocket") * number("config.hardware.numCPU");
    if capacity <= 0.0 {
        return Ok(reply::failure("Unable to retrieve required properties"));
    }
    let usage = number("summary.quickStats.overallCpuUsage") * 1_048_576.0 / capacity * 100.0;
    let result = json!([{"name": inventory::property_json(&content, "name"), "vm.cpu.usage.percent": usage}]);
    Ok(reply::success("Successfully retrieved properties", result))
}

pub(crate) fn vsan_health_get(agent: &Agent, msg: &Msg<'_>) -> Result<Value, Error> {
    let paths = [
        "name",
        "runtime.powerState",
        "runtime.connectionState",
        "configManager.vsanSystem",
    ];
    let content = match inventory::lookup(agent, msg, "HostSystem", &paths, "Cannot find object ")?
    {
        Ok(content) => content,
        Err(reply) => return Ok(reply),
    };
    if inventory::property_json(&content, "runtime.powerState") != "poweredOn" {
        return Ok(reply::failure(
            "Host is not powered on, cannot get VSAN health state",
        ));
    }
    if inventory::property_json(&content, "runtime.connectionState") != "connected" {
        return Ok(reply::failure(
            "Host is not connected, cannot get VSAN health state",
        ));
    }
    let Some(vsan) = inventory::references(&content, "configManager.vsanSystem")
        .into_iter()
        .next()
    else {
        return Ok(reply::failure(
            "Host has no vSAN system, cannot get VSAN health state",
        ));
    };
    let connection = agent.connection()?;
    let status = connection.call(
        "QueryHostStatus",
        &|_: &Session| Ok(vsan.clone()),
        &|_: &Session| Ok(String::new()),
        msg.deadline,
    )?;
    let status = status
        .first()
        .map(|node| value::convert(node, Some(Kind::Data("VsanHostClusterStatus"))))
        .unwrap_or(Value::Null);
    let pick = |field: &str| status.get(field).cloned().unwrap_or(Value::Null);
    let health = json!([{
        "name": inventory::property_json(&content, "name"),
        "uuid": pick("uuid"),
        "nodeUuid": pick("nodeUuid"),
        "health": pick("health"),
    }]);
    Ok(reply::success(
        "Successfully retrieved object properties",
        health,
    ))
}

#[cfg(test)]
mod tests {
    use super::python_datetime;

    #[test]
    fn datetimes_read_as_python_prints_them() {
        assert_eq!(
            python_datetime("2020-01-01T10:11:12.123456Z"),
            "2020-01-01 10:11:12.123456+00:00"
        );
        assert_eq!(
            python_datetime("2020-01-01T10:11:12.5Z"),
            "2020-01-01 10:11:12.500000+00:00"
        );
        assert_eq!(
            python_datetime("2020-01-01T10:11:12Z"),
            "2020-01-01 10:11:12+00:00"
        );
        assert_eq!(
            python_datetime("2020-01-01T10:11:12.000+02:00"),
            "2020-01-01 10:11:12+02:00"
        );
        assert_eq!(
            python_datetime("2020-01-01T10:11:12-05:00"),
            "2020-01-01 10:11:12-05:00"
        );
    }
}
