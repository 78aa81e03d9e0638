//! What VMware Tools report from inside a VM: its disks
//! (`vm.disk.discover`, `vm.disk.get`), its network cards
//! (`vm.guest.net.get`) and its processes (`vm.process.get`).

use crate::agent::inventory::{self, service_properties, MISSING};
use crate::agent::python;
use crate::agent::reply;
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::session::Session;
use crate::vsphere::soap::element;
use crate::vsphere::typetable::Kind;
use crate::vsphere::value;
use serde_json::{json, Map, Value};

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
                .map(|name| (name.clone(), python::attribute(item, type_name, name)))
                .collect();
            Value::Object(fields)
        })
        .collect()
}

/// The VM's name and its guest disks, with the requested fields.
fn guest_disks(agent: &Agent, msg: &Msg<'_>) -> TaskResult<(Value, Vec<Value>)> {
    let content = inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "guest.disk"],
        MISSING,
    )?;
    let disks = inventory::property_json(&content, "guest.disk");
    Ok((
        inventory::property_json(&content, "name"),
        pick_fields(&disks, "GuestDiskInfo", "diskPath", msg),
    ))
}

/// `vm.disk.discover`: the VM's guest disks.
pub(crate) fn vm_disk_discover(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let (name, disks) = guest_disks(agent, msg)?;
    Ok(reply::success(
        "Successfully discovered objects",
        json!([{"name": name, "disk": disks}]),
    ))
}

/// `vm.disk.get`: the guest disk whose path is the message's `key` (all of
/// them without a key).
pub(crate) fn vm_disk_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let (name, disks) = guest_disks(agent, msg)?;
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
    let disk = disks
        .into_iter()
        .find(|disk| disk.get("diskPath").and_then(Value::as_str) == Some(wanted.as_str()))
        .ok_or_else(|| TaskError::refuse(format!("Unable to find guest disk {wanted}")))?;
    Ok(reply::success(
        "Successfully retrieved properties",
        json!([{"name": msg.name(), "disk": disk}]),
    ))
}

/// `vm.guest.net.get`: the VM's network cards as the guest sees them.
pub(crate) fn vm_guest_net_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "guest.net"],
        MISSING,
    )?;
    let nets = inventory::property_json(&content, "guest.net");
    let result = json!({"name": inventory::property_json(&content, "name"), "net": pick_fields(&nets, "GuestNicInfo", "network", msg)});
    Ok(reply::success("Successfully retrieved properties", result))
}

/// `vm.process.get`: the processes running in the guest, listed with the
/// guest credentials of the message.
pub(crate) fn vm_process_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "guest.toolsRunningStatus"],
        MISSING,
    )?;
    if inventory::property_json(&content, "guest.toolsRunningStatus") != "guestToolsRunning" {
        return Err(TaskError::refuse(format!(
            "{} is not running VMware Tools",
            msg.name()
        )));
    }
    let (Some(username), Some(password)) = (msg.truthy("username"), msg.truthy("password")) else {
        return Err(TaskError::refuse(format!(
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
    let manager = operations
        .as_ref()
        .map(|content| inventory::references(content, "processManager"))
        .and_then(|list| list.into_iter().next())
        .ok_or_else(|| {
            TaskError::refuse("Cannot get guest processes: no guest process manager on this host")
        })?;
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
    let processes = connection
        .call(
            "ListProcessesInGuest",
            &|_: &Session| Ok(manager.clone()),
            &args,
            msg.deadline,
        )
        .map_err(|error| match error {
            Error::VSphere { .. } => {
                TaskError::refuse(format!("Cannot get guest processes: {error}"))
            }
            other => other.into(),
        })?;
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
