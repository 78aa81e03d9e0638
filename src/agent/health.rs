//! How one object is doing, worked out from its properties: a VM's CPU
//! usage in percent of what its vCPUs can do (`vm.cpu.usage.percent`) and a
//! host's vSAN health (`vsan.health.get`).

use crate::agent::inventory::{self, MISSING};
use crate::agent::reply;
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::Agent;
use crate::vsphere::session::Session;
use crate::vsphere::typetable::Kind;
use crate::vsphere::value;
use serde_json::{json, Value};

/// `vm.cpu.usage.percent`: the VM's CPU use (quick stats, MHz) over its
/// capacity (its host's clock times its cores), in percent.
pub(crate) fn vm_cpu_usage_percent(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    const REQUIRED: [&str; 5] = [
        "name",
        "runtime.host",
        "summary.quickStats.overallCpuUsage",
        "config.hardware.numCoresPerSocket",
        "config.hardware.numCPU",
    ];
    let content = inventory::lookup(agent, msg, "VirtualMachine", &REQUIRED, MISSING)?;
    let unavailable = || TaskError::refuse("Unable to retrieve required properties");
    if !REQUIRED.iter().all(|path| content.get(path).is_some()) {
        return Err(unavailable());
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
        return Err(unavailable());
    }
    let usage = number("summary.quickStats.overallCpuUsage") * 1_048_576.0 / capacity * 100.0;
    let result = json!([{"name": inventory::property_json(&content, "name"), "vm.cpu.usage.percent": usage}]);
    Ok(reply::success("Successfully retrieved properties", result))
}

/// `vsan.health.get`: the host's vSAN cluster status.
pub(crate) fn vsan_health_get(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let paths = [
        "name",
        "runtime.powerState",
        "runtime.connectionState",
        "configManager.vsanSystem",
    ];
    let content = inventory::lookup(agent, msg, "HostSystem", &paths, MISSING)?;
    if inventory::property_json(&content, "runtime.powerState") != "poweredOn" {
        return Err(TaskError::refuse(
            "Host is not powered on, cannot get VSAN health state",
        ));
    }
    if inventory::property_json(&content, "runtime.connectionState") != "connected" {
        return Err(TaskError::refuse(
            "Host is not connected, cannot get VSAN health state",
        ));
    }
    let vsan = inventory::references(&content, "configManager.vsanSystem")
        .into_iter()
        .next()
        .ok_or_else(|| {
            TaskError::refuse("Host has no vSAN system, cannot get VSAN health state")
        })?;
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
