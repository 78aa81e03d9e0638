//! Tasks that answer with the objects related to one object: the VMs on a
//! host, the hosts of a network, the datastores of a VM, ...

use crate::agent::inventory::{self, MISSING};
use crate::agent::reply;
use crate::agent::request::{Msg, TaskResult};
use crate::agent::Agent;
use crate::vsphere::soap::MoRef;
use serde_json::{json, Value};

const DISCOVERED: &str = "Successfully discovered objects";

/// `{"name": <object>, <field>: [{"name": ...}, ...]}`: the shape of
/// `net.host.get`, `net.vm.get`, `host.net.get` and `vm.net.get`.
fn named_with_related(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    path: &str,
    related_kind: &str,
    field: &str,
) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, kind, &["name", path], MISSING)?;
    let related = inventory::references(&content, path);
    let names = inventory::properties_of(agent, related_kind, &related, &["name"], msg)?;
    let mut result = serde_json::Map::new();
    result.insert("name".into(), inventory::property_json(&content, "name"));
    result.insert(field.into(), Value::Array(names));
    Ok(reply::success(DISCOVERED, Value::Object(result)))
}

/// `[{"name": ...}, ...]` of the objects in property `path`.
fn related_list(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    path: &str,
    related_kind: &str,
) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, kind, &[path], MISSING)?;
    let related = inventory::references(&content, path);
    let names = inventory::properties_of(agent, related_kind, &related, &["name"], msg)?;
    Ok(reply::success(DISCOVERED, Value::Array(names)))
}

pub(crate) fn net_host_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    named_with_related(agent, msg, "Network", "host", "HostSystem", "host")
}

pub(crate) fn net_vm_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    named_with_related(agent, msg, "Network", "vm", "VirtualMachine", "vm")
}

pub(crate) fn host_net_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    named_with_related(agent, msg, "HostSystem", "network", "Network", "network")
}

pub(crate) fn vm_net_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    named_with_related(
        agent,
        msg,
        "VirtualMachine",
        "network",
        "Network",
        "network",
    )
}

pub(crate) fn host_vm_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    related_list(agent, msg, "HostSystem", "vm", "VirtualMachine")
}

pub(crate) fn datastore_vm_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    related_list(agent, msg, "Datastore", "vm", "VirtualMachine")
}

/// `datastore.host.get`: the hosts that mount the datastore (`host` holds
/// DatastoreHostMount objects whose `key` is the host).
pub(crate) fn datastore_host_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, "Datastore", &["host"], MISSING)?;
    let hosts: Vec<MoRef> = content
        .get("host")
        .map(|mounts| {
            mounts
                .children
                .iter()
                .filter_map(|mount| mount.child("key").and_then(MoRef::from_node))
                .collect()
        })
        .unwrap_or_default();
    let names = inventory::properties_of(agent, "HostSystem", &hosts, &["name"], msg)?;
    Ok(reply::success(DISCOVERED, Value::Array(names)))
}

/// `host.datastore.get`, `vm.datastore.get`: name and URL of each datastore.
pub(crate) fn datastore_get(agent: &Agent, msg: &Msg<'_>, kind: &str) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, kind, &["name", "datastore"], MISSING)?;
    let datastores = inventory::references(&content, "datastore");
    let found =
        inventory::properties_of(agent, "Datastore", &datastores, &["name", "info.url"], msg)?;
    Ok(reply::success(DISCOVERED, Value::Array(found)))
}

/// `host.cluster.get`: the host's parent (its cluster, or for a standalone
/// host its compute resource).
pub(crate) fn host_cluster_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, "HostSystem", &["name", "parent"], MISSING)?;
    let parent = inventory::references(&content, "parent");
    let parent_kind = parent
        .first()
        .map(|reference| reference.kind.clone())
        .unwrap_or_default();
    let names = inventory::properties_of(agent, &parent_kind, &parent, &["name"], msg)?;
    let cluster = names
        .first()
        .and_then(|entry| entry.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let result = json!([{"name": inventory::property_json(&content, "name"), "cluster": cluster}]);
    Ok(reply::success("Successfully retrieved properties", result))
}

/// `vm.host.get`: the host the VM runs on.
pub(crate) fn vm_host_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = inventory::lookup(
        agent,
        msg,
        "VirtualMachine",
        &["name", "runtime.host"],
        MISSING,
    )?;
    let host = inventory::references(&content, "runtime.host");
    let names = inventory::properties_of(agent, "HostSystem", &host, &["name"], msg)?;
    let host_name = names
        .first()
        .and_then(|entry| entry.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let result = json!([{"name": inventory::property_json(&content, "name"), "host": host_name}]);
    Ok(reply::success(
        "Successfully retrieved object properties",
        result,
    ))
}
