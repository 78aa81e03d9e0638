//! The task table: for each vPoller task its name, the message keys it
//! requires, the function that runs it and what py-vpoller's Zabbix helper
//! makes of its result; and the checks py-vpoller's worker makes before a
//! task runs.

use crate::agent::perf::{self, Check};
use crate::agent::reply::{self, Answer};
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::{alarms, guest, health, inventory, relations, service, snapshots, Agent};
use once_cell::sync::Lazy;
use serde_json::{Map, Value};
use std::collections::HashMap;

type TaskFn = fn(&Agent, &Msg<'_>) -> TaskResult<Value>;
type TextTaskFn = fn(&Agent, &Msg<'_>) -> TaskResult<Answer>;

/// How a task runs: most build a JSON value; those with large results
/// (discover) write the reply text as the objects arrive.
enum Run {
    Json(TaskFn),
    Text(TextTaskFn),
}

/// What py-vpoller 0.7.3's Zabbix helper (`vpoller.helpers.zabbix`) makes
/// of a task's successful result: the name of its method for the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZabbixForm {
    /// `zabbix_item_value`: the first requested property of the last result item.
    Item,
    /// `zabbix_lld_data`: low-level discovery data over the result list.
    Discovery,
    /// `zabbix_vm_disk_discover`: discovery data over `result[0].disk`.
    DiskDiscovery,
    /// `zabbix_vm_disk_get`: the first requested property of `result[0].disk`.
    Disk,
    /// `zabbix_vm_guest_net_discover`: discovery data over `result.net`.
    GuestNet,
    /// `zabbix_vm_process_get`: the number of processes (whose command line
    /// holds `key`, if given).
    Processes,
}

/// One row of the table.
pub(crate) struct Task {
    /// The `method` of a request.
    pub name: &'static str,
    /// The message keys py-vpoller's worker requires (`Invalid task request`).
    pub required: &'static [&'static str],
    run: Run,
    /// The Zabbix helper's form; `None` for the methods it does not know
    /// (`[zbx-helper]: Do not know how to process METHOD method`).
    pub zabbix: Option<ZabbixForm>,
}

const fn task(
    name: &'static str,
    required: &'static [&'static str],
    zabbix: Option<ZabbixForm>,
    run: TaskFn,
) -> Task {
    Task {
        name,
        required,
        run: Run::Json(run),
        zabbix,
    }
}

const fn text_task(
    name: &'static str,
    required: &'static [&'static str],
    zabbix: Option<ZabbixForm>,
    run: TextTaskFn,
) -> Task {
    Task {
        name,
        required,
        run: Run::Text(run),
        zabbix,
    }
}

const ITEM: Option<ZabbixForm> = Some(ZabbixForm::Item);
const DISCOVERY: Option<ZabbixForm> = Some(ZabbixForm::Discovery);

const NAME: &[&str] = &["name"];
const NAME_PROPERTIES: &[&str] = &["name", "properties"];
const NAME_COUNTER: &[&str] = &["name", "counter-name"];
const NAME_COUNTER_INTERVAL: &[&str] = &["name", "counter-name", "perf-interval"];

static TASKS: &[Task] = &[
    task("about", &[], ITEM, service::about),
    task("event.latest", &[], ITEM, service::event_latest),
    task("session.get", &[], DISCOVERY, service::session_get),
    task("perf.metric.info", &[], None, perf::perf_metric_info),
    task("perf.interval.info", &[], None, perf::perf_interval_info),
    text_task("net.discover", &[], None, |agent, msg| {
        inventory::discover(agent, msg, "Network")
    }),
    task("net.get", NAME, None, |agent, msg| {
        inventory::get(agent, msg, "Network")
    }),
    task("net.host.get", NAME, None, relations::net_host_get),
    task("net.vm.get", NAME, None, relations::net_vm_get),
    text_task("datacenter.discover", &[], DISCOVERY, |agent, msg| {
        inventory::discover(agent, msg, "Datacenter")
    }),
    task(
        "datacenter.perf.metric.get",
        NAME_COUNTER_INTERVAL,
        ITEM,
        |agent, msg| perf::entity_metric_get(agent, msg, "Datacenter", Check::None),
    ),
    task(
        "datacenter.perf.metric.info",
        NAME,
        DISCOVERY,
        |agent, msg| perf::entity_metric_info(agent, msg, "Datacenter"),
    ),
    task("datacenter.get", NAME_PROPERTIES, ITEM, |agent, msg| {
        inventory::get(agent, msg, "Datacenter")
    }),
    task("datacenter.alarm.get", NAME, DISCOVERY, |agent, msg| {
        alarms::alarm_get(agent, msg, "Datacenter")
    }),
    text_task("cluster.discover", &[], DISCOVERY, |agent, msg| {
        inventory::discover(agent, msg, "ClusterComputeResource")
    }),
    task(
        "cluster.perf.metric.get",
        NAME_COUNTER_INTERVAL,
        ITEM,
        |agent, msg| perf::entity_metric_get(agent, msg, "ClusterComputeResource", Check::None),
    ),
    task("cluster.perf.metric.info", NAME, DISCOVERY, |agent, msg| {
        perf::entity_metric_info(agent, msg, "ClusterComputeResource")
    }),
    task("cluster.get", NAME_PROPERTIES, ITEM, |agent, msg| {
        inventory::get(agent, msg, "ClusterComputeResource")
    }),
    task("cluster.alarm.get", NAME, DISCOVERY, |agent, msg| {
        alarms::alarm_get(agent, msg, "ClusterComputeResource")
    }),
    text_task("resource.pool.discover", &[], None, |agent, msg| {
        inventory::discover(agent, msg, "ResourcePool")
    }),
    task("resource.pool.get", NAME_PROPERTIES, ITEM, |agent, msg| {
        inventory::get(agent, msg, "ResourcePool")
    }),
    text_task("host.discover", &[], DISCOVERY, |agent, msg| {
        inventory::discover(agent, msg, "HostSystem")
    }),
    task("host.get", NAME_PROPERTIES, ITEM, |agent, msg| {
        inventory::get(agent, msg, "HostSystem")
    }),
    task("host.alarm.get", NAME, DISCOVERY, |agent, msg| {
        alarms::alarm_get(agent, msg, "HostSystem")
    }),
    task("host.perf.metric.get", NAME_COUNTER, ITEM, |agent, msg| {
        perf::entity_metric_get(agent, msg, "HostSystem", Check::Running("Host"))
    }),
    task("host.perf.metric.info", NAME, DISCOVERY, |agent, msg| {
        perf::entity_metric_info(agent, msg, "HostSystem")
    }),
    task("host.cluster.get", NAME, ITEM, relations::host_cluster_get),
    task("host.vm.get", NAME, DISCOVERY, relations::host_vm_get),
    task("host.net.get", NAME, None, relations::host_net_get),
    task("host.datastore.get", NAME, DISCOVERY, |agent, msg| {
        relations::datastore_get(agent, msg, "HostSystem")
    }),
    task("vm.alarm.get", NAME, DISCOVERY, |agent, msg| {
        alarms::alarm_get(agent, msg, "VirtualMachine")
    }),
    task("vm.perf.metric.get", NAME_COUNTER, ITEM, |agent, msg| {
        perf::entity_metric_get(agent, msg, "VirtualMachine", Check::Running("VM"))
    }),
    task("vm.perf.metric.info", NAME, DISCOVERY, |agent, msg| {
        perf::entity_metric_info(agent, msg, "VirtualMachine")
    }),
    text_task("vm.discover", &[], DISCOVERY, |agent, msg| {
        inventory::discover(agent, msg, "VirtualMachine")
    }),
    task(
        "vm.disk.discover",
        NAME,
        Some(ZabbixForm::DiskDiscovery),
        guest::vm_disk_discover,
    ),
    task(
        "vm.guest.net.get",
        NAME,
        Some(ZabbixForm::GuestNet),
        guest::vm_guest_net_get,
    ),
    task("vm.net.get", NAME, None, relations::vm_net_get),
    task(
        "vm.snapshot.get",
        NAME,
        DISCOVERY,
        snapshots::vm_snapshot_get,
    ),
    task("vm.get", NAME_PROPERTIES, ITEM, |agent, msg| {
        inventory::get(agent, msg, "VirtualMachine")
    }),
    task("vm.host.get", NAME, ITEM, relations::vm_host_get),
    task("vm.datastore.get", NAME, DISCOVERY, |agent, msg| {
        relations::datastore_get(agent, msg, "VirtualMachine")
    }),
    task(
        "vm.disk.get",
        NAME,
        Some(ZabbixForm::Disk),
        guest::vm_disk_get,
    ),
    task(
        "vm.process.get",
        &["name", "username", "password"],
        Some(ZabbixForm::Processes),
        guest::vm_process_get,
    ),
    task(
        "vm.cpu.usage.percent",
        NAME,
        ITEM,
        health::vm_cpu_usage_percent,
    ),
    text_task("datastore.discover", &[], DISCOVERY, |agent, msg| {
        inventory::discover(agent, msg, "Datastore")
    }),
    task("datastore.get", NAME_PROPERTIES, ITEM, |agent, msg| {
        inventory::get(agent, msg, "Datastore")
    }),
    task("datastore.alarm.get", NAME, DISCOVERY, |agent, msg| {
        alarms::alarm_get(agent, msg, "Datastore")
    }),
    task(
        "datastore.perf.metric.info",
        NAME,
        DISCOVERY,
        |agent, msg| perf::entity_metric_info(agent, msg, "Datastore"),
    ),
    task(
        "datastore.perf.metric.get",
        NAME_COUNTER,
        ITEM,
        |agent, msg| perf::entity_metric_get(agent, msg, "Datastore", Check::None),
    ),
    task(
        "datastore.host.get",
        NAME,
        DISCOVERY,
        relations::datastore_host_get,
    ),
    task(
        "datastore.vm.get",
        NAME,
        DISCOVERY,
        relations::datastore_vm_get,
    ),
    task("vsan.health.get", NAME, ITEM, health::vsan_health_get),
];

/// The table by task name, built once.
static BY_NAME: Lazy<HashMap<&'static str, &'static Task>> =
    Lazy::new(|| TASKS.iter().map(|task| (task.name, task)).collect());

/// The task called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Task> {
    BY_NAME.get(name).copied()
}

/// The names of every task the agent runs, in the table's order.
pub fn task_names() -> Vec<&'static str> {
    TASKS.iter().map(|task| task.name).collect()
}

/// Checks `fields` as py-vpoller's worker does and runs the task.
pub(crate) fn run(agent: &Agent, fields: &Map<String, Value>) -> Answer {
    let Some(task) = fields.get("method").and_then(Value::as_str).and_then(find) else {
        return Answer::Json(reply::failure("Unknown or missing task/method name"));
    };
    if !task.required.iter().all(|key| fields.contains_key(*key)) {
        return Answer::Json(reply::failure("Invalid task request"));
    }
    let msg = Msg {
        fields,
        deadline: agent.deadline(),
    };
    #[cfg(test)]
    crate::test_hooks::panic_at("task", &Value::Object(fields.clone()));
    let outcome = match task.run {
        Run::Json(run) => run(agent, &msg).map(Answer::Json),
        Run::Text(run) => run(agent, &msg),
    };
    match outcome {
        Ok(answer) => answer,
        Err(TaskError::Reply(reply)) => Answer::Json(reply),
        Err(TaskError::Failed(error)) => Answer::Json(reply::failure(format!(
            "Task {} failed: {error}",
            task.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_of_py_vpoller_is_in_the_table() {
        // `@task(name=...)` of py-vpoller 0.7.3's vsphere/tasks.py, sorted.
        const REFERENCE: &str = "about cluster.alarm.get cluster.discover cluster.get \
            cluster.perf.metric.get cluster.perf.metric.info datacenter.alarm.get \
            datacenter.discover datacenter.get datacenter.perf.metric.get \
            datacenter.perf.metric.info datastore.alarm.get datastore.discover datastore.get \
            datastore.host.get datastore.perf.metric.get datastore.perf.metric.info \
            datastore.vm.get event.latest host.alarm.get host.cluster.get host.datastore.get \
            host.discover host.get host.net.get host.perf.metric.get host.perf.metric.info \
            host.vm.get net.discover net.get net.host.get net.vm.get perf.interval.info \
            perf.metric.info resource.pool.discover resource.pool.get session.get vm.alarm.get \
            vm.cpu.usage.percent vm.datastore.get vm.discover vm.disk.discover vm.disk.get \
            vm.get vm.guest.net.get vm.host.get vm.net.get vm.perf.metric.get \
            vm.perf.metric.info vm.process.get vm.snapshot.get vsan.health.get";
        let reference: Vec<&str> = REFERENCE.split_whitespace().collect();
        let mut names = task_names();
        names.sort_unstable();
        assert_eq!(names, reference);
        assert_eq!(names.len(), 52);
        assert!(names
            .iter()
            .all(|name| find(name).is_some_and(|task| task.name == *name)));
        assert!(find("no.such").is_none());
    }

    #[test]
    fn the_zabbix_forms_are_py_vpollers() {
        // `self.methods` of py-vpoller 0.7.3's helpers/zabbix.py, in its order:
        // the method and the helper function that processes its result.
        const REFERENCE: &str = "about zabbix_item_value, event.latest zabbix_item_value, \
            session.get zabbix_lld_data, datacenter.discover zabbix_lld_data, \
            datacenter.get zabbix_item_value, datacenter.alarm.get zabbix_lld_data, \
            datacenter.perf.metric.get zabbix_item_value, \
            datacenter.perf.metric.info zabbix_lld_data, cluster.alarm.get zabbix_lld_data, \
            cluster.discover zabbix_lld_data, cluster.get zabbix_item_value, \
            cluster.perf.metric.get zabbix_item_value, cluster.perf.metric.info zabbix_lld_data, \
            host.alarm.get zabbix_lld_data, host.discover zabbix_lld_data, \
            host.get zabbix_item_value, host.vm.get zabbix_lld_data, \
            host.datastore.get zabbix_lld_data, host.cluster.get zabbix_item_value, \
            host.perf.metric.get zabbix_item_value, host.perf.metric.info zabbix_lld_data, \
            vm.alarm.get zabbix_lld_data, vm.discover zabbix_lld_data, vm.get zabbix_item_value, \
            vm.datastore.get zabbix_lld_data, vm.disk.discover zabbix_vm_disk_discover, \
            vm.disk.get zabbix_vm_disk_get, vm.host.get zabbix_item_value, \
            vm.process.get zabbix_vm_process_get, vm.cpu.usage.percent zabbix_item_value, \
            vm.perf.metric.get zabbix_item_value, vm.perf.metric.info zabbix_lld_data, \
            vm.snapshot.get zabbix_lld_data, datastore.alarm.get zabbix_lld_data, \
            datastore.discover zabbix_lld_data, datastore.get zabbix_item_value, \
            datastore.host.get zabbix_lld_data, datastore.vm.get zabbix_lld_data, \
            datastore.perf.metric.get zabbix_item_value, \
            datastore.perf.metric.info zabbix_lld_data, vsan.health.get zabbix_item_value, \
            vm.guest.net.get zabbix_vm_guest_net_discover, resource.pool.get zabbix_item_value";
        let reference: HashMap<&str, ZabbixForm> = REFERENCE
            .split(", ")
            .map(|entry| {
                let (method, function) = entry.split_once(' ').unwrap();
                let form = match function {
                    "zabbix_item_value" => ZabbixForm::Item,
                    "zabbix_lld_data" => ZabbixForm::Discovery,
                    "zabbix_vm_disk_discover" => ZabbixForm::DiskDiscovery,
                    "zabbix_vm_disk_get" => ZabbixForm::Disk,
                    "zabbix_vm_guest_net_discover" => ZabbixForm::GuestNet,
                    "zabbix_vm_process_get" => ZabbixForm::Processes,
                    other => panic!("unknown helper function {other}"),
                };
                (method, form)
            })
            .collect();
        assert_eq!(reference.len(), 43);
        for task in TASKS {
            assert_eq!(
                task.zabbix,
                reference.get(task.name).copied(),
                "the Zabbix form of {}",
                task.name
            );
        }
        assert!(reference.keys().all(|method| find(method).is_some()));
    }
}
