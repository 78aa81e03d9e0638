//! `vm.snapshot.get`: a VM's snapshot tree.

use crate::agent::inventory::{self, MISSING_COLON};
use crate::agent::python;
use crate::agent::reply;
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::Agent;
use serde_json::{json, Value};

/// `vm.snapshot.get`: every snapshot of the VM, parents before their
/// children (py-vpoller lists the roots and their children only).
pub(crate) fn vm_snapshot_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, "VirtualMachine", &["snapshot"], MISSING_COLON)?;
    let snapshot = inventory::property_json(&content, "snapshot");
    let roots = snapshot
        .get("rootSnapshotList")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if roots.is_empty() {
        return Err(TaskError::refuse(format!(
            "No snapshots found for: {}",
            msg.name()
        )));
    }
    let mut pending: Vec<Value> = roots.into_iter().rev().collect();
    let mut result = Vec::new();
    while let Some(tree) = pending.pop() {
        if let Some(children) = tree.get("childSnapshotList").and_then(Value::as_array) {
            pending.extend(children.iter().rev().cloned());
        }
        result.push(json!({
            "createTime": python::str_of(tree.get("createTime"), true),
            "description": tree.get("description").cloned().unwrap_or(Value::Null),
            "id": tree.get("id").cloned().unwrap_or(Value::Null),
            "name": tree.get("name").cloned().unwrap_or(Value::Null),
            "quiesced": python::str_of(tree.get("quiesced"), false),
            "state": tree.get("state").cloned().unwrap_or(Value::Null),
        }));
    }
    Ok(reply::success(
        "Successfully retrieved snapshots",
        Value::Array(result),
    ))
}
