//! The task table: each vPoller task's name, the message keys it requires and
//! the function that runs it, and the checks py-vpoller's worker makes before
//! a task runs.

use crate::agent::perf::{self, Check};
use crate::agent::reply::{self, Answer};
use crate::agent::{inventory, misc, relations, Agent};
use crate::error::Error;
use serde_json::{Map, Value};
use std::time::Instant;

/// A task's message, checked.
pub(crate) struct Msg<'a> {
    pub fields: &'a Map<String, Value>,
    pub deadline: Instant,
}

impl Msg<'_> {
    /// `name` as text (a number is written as Python would).
    pub fn name(&self) -> String {
        self.text("name").unwrap_or_default()
    }

    /// A field as text: strings as they are, numbers in their JSON form.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(if *flag { "True" } else { "False" }.to_owned()),
            _ => None,
        }
    }

    /// The `properties` the message asks for: a list of paths, or one path
    /// as a string; none when absent, null or empty.
    pub fn properties(&self) -> Vec<String> {
        match self.fields.get("properties") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(path)) if !path.is_empty() => vec![path.clone()],
            _ => Vec::new(),
        }
    }

    /// A field that py-vpoller treats as set only when truthy.
    pub fn truthy(&self, key: &str) -> Option<&Value> {
        self.fields.get(key).filter(|value| match value {
            Value::Null => false,
            Value::Bool(flag) => *flag,
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(fields) => !fields.is_empty(),
            Value::Number(number) => number.as_f64() != Some(0.0),
        })
    }
}

type TaskFn = fn(&Agent, &Msg<'_>) -> Result<Value, Error>;
type TextTaskFn = fn(&Agent, &Msg<'_>) -> Result<Answer, Error>;

/// How a task runs: most build a JSON value; those with large results
/// (discover) write the reply text as the objects arrive.
enum Run {
    Json(TaskFn),
    Text(TextTaskFn),
}

struct Task {
    name: &'static str,
    required: &'static [&'static str],
    run: Run,
}

const fn task(name: &'static str, required: &'static [&'static str], run: TaskFn) -> Task {
    Task {
        name,
        required,
        run: Run::Json(run),
    }
}

const fn text_task(name: &'static str, required: &'static [&'static str], run: TextTaskFn) -> Task {
    Task {
        name,
        required,
        run: Run::Text(run),
    }
}

const NAME: &[&str] = &["name"];
const NAME_PROPERTIES: &[&str] = &["name", "properties"];
const NAME_COUNTER: &[&str] = &["name", "counter-name"];
const NAME_COUNTER_INTERVAL: &[&str] = &["name", "counter-name", "perf-interval"];

static TASKS: &[Task] = &[
    task("about", &[], misc::about),
    task("event.latest", &[], misc::event_latest),
    task("session.get", &[], misc::session_get),
    task("perf.metric.info", &[], perf::perf_metric_info),
    task("perf.interval.info", &[], perf::perf_interval_info),
    text_task("net.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "Network")
    }),
    task("net.get", NAME, |agent, msg| {
        inventory::get(agent, msg, "Network")
    }),
    task("net.host.get", NAME, relations::net_host_get),
    task("net.vm.get", NAME, relations::net_vm_get),
    text_task("datacenter.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "Datacenter")
    }),
    task(
        "datacenter.perf.metric.get",
        NAME_COUNTER_INTERVAL,
        |agent, msg| perf::entity_metric_get(agent, msg, "Datacenter", Check::None),
    ),
    task("datacenter.perf.metric.info", NAME, |agent, msg| {
        perf::entity_metric_info(agent, msg, "Datacenter")
    }),
    task("datacenter.get", NAME_PROPERTIES, |agent, msg| {
        inventory::get(agent, msg, "Datacenter")
    }),
    task("datacenter.alarm.get", NAME, |agent, msg| {
        misc::alarm_get(agent, msg, "Datacenter")
    }),
    text_task("cluster.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "ClusterComputeResource")
    }),
    task(
        "cluster.perf.metric.get",
        NAME_COUNTER_INTERVAL,
        |agent, msg| perf::entity_metric_get(agent, msg, "ClusterComputeResource", Check::None),
    ),
    task("cluster.perf.metric.info", NAME, |agent, msg| {
        perf::entity_metric_info(agent, msg, "ClusterComputeResource")
    }),
    task("cluster.get", NAME_PROPERTIES, |agent, msg| {
        inventory::get(agent, msg, "ClusterComputeResource")
    }),
    task("cluster.alarm.get", NAME, |agent, msg| {
        misc::alarm_get(agent, msg, "ClusterComputeResource")
    }),
    text_task("resource.pool.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "ResourcePool")
    }),
    task("resource.pool.get", NAME_PROPERTIES, |agent, msg| {
        inventory::get(agent, msg, "ResourcePool")
    }),
    text_task("host.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "HostSystem")
    }),
    task("host.get", NAME_PROPERTIES, |agent, msg| {
        inventory::get(agent, msg, "HostSystem")
    }),
    task("host.alarm.get", NAME, |agent, msg| {
        misc::alarm_get(agent, msg, "HostSystem")
    }),
    task("host.perf.metric.get", NAME_COUNTER, |agent, msg| {
        perf::entity_metric_get(agent, msg, "HostSystem", Check::Running("Host"))
    }),
    task("host.perf.metric.info", NAME, |agent, msg| {
        perf::entity_metric_info(agent, msg, "HostSystem")
    }),
    task("host.cluster.get", NAME, relations::host_cluster_get),
    task("host.vm.get", NAME, relations::host_vm_get),
    task("host.net.get", NAME, relations::host_net_get),
    task("host.datastore.get", NAME, |agent, msg| {
        relations::datastore_get(agent, msg, "HostSystem")
    }),
    task("vm.alarm.get", NAME, |agent, msg| {
        misc::alarm_get(agent, msg, "VirtualMachine")
    }),
    task("vm.perf.metric.get", NAME_COUNTER, |agent, msg| {
        perf::entity_metric_get(agent, msg, "VirtualMachine", Check::Running("VM"))
    }),
    task("vm.perf.metric.info", NAME, |agent, msg| {
        perf::entity_metric_info(agent, msg, "VirtualMachine")
    }),
    text_task("vm.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "VirtualMachine")
    }),
    task("vm.disk.discover", NAME, misc::vm_disk_discover),
    task("vm.guest.net.get", NAME, misc::vm_guest_net_get),
    task("vm.net.get", NAME, relations::vm_net_get),
    task("vm.snapshot.get", NAME, misc::vm_snapshot_get),
    task("vm.get", NAME_PROPERTIES, |agent, msg| {
        inventory::get(agent, msg, "VirtualMachine")
    }),
    task("vm.host.get", NAME, relations::vm_host_get),
    task("vm.datastore.get", NAME, |agent, msg| {
        relations::datastore_get(agent, msg, "VirtualMachine")
    }),
    task("vm.disk.get", NAME, misc::vm_disk_get),
    task(
        "vm.process.get",
        &["name", "username", "password"],
        misc::vm_process_get,
    ),
    task("vm.cpu.usage.percent", NAME, misc::vm_cpu_usage_percent),
    text_task("datastore.discover", &[], |agent, msg| {
        inventory::discover(agent, msg, "Datastore")
    }),
    task("datastore.get", NAME_PROPERTIES, |agent, msg| {
        inventory::get(agent, msg, "Datastore")
    }),
    task("datastore.alarm.get", NAME, |agent, msg| {
        misc::alarm_get(agent, msg, "Datastore")
    }),
    task("datastore.perf.metric.info", NAME, |agent, msg| {
        perf::entity_metric_info(agent, msg, "Datastore")
    }),
    task("datastore.perf.metric.get", NAME_COUNTER, |agent, msg| {
        perf::entity_metric_get(agent, msg, "Datastore", Check::None)
    }),
    task("datastore.host.get", NAME, relations::datastore_host_get),
    task("datastore.vm.get", NAME, relations::datastore_vm_get),
    task("vsan.health.get", NAME, misc::vsan_health_get),
];

/// The names of every task the agent runs, in the table's order.
pub fn task_names() -> Vec<&'static str> {
    TASKS.iter().map(|task| task.name).collect()
}

/// Checks `fields` as py-vpoller's worker does and runs the task.
pub(crate) fn run(agent: &Agent, fields: &Map<String, Value>) -> Answer {
    let method = fields.get("method").and_then(Value::as_str);
    let Some(task) = method.and_then(|method| TASKS.iter().find(|task| task.name == method)) else {
        return Answer::Json(reply::failure("Unknown or missing task/method name"));
    };
    if !task.required.iter().all(|key| fields.contains_key(*key)) {
        return Answer::Json(reply::failure("Invalid task request"));
    }
    let msg = Msg {
        fields,
        deadline: agent.deadline(),
    };
    let outcome = match task.run {
        Run::Json(run) => run(agent, &msg).map(Answer::Json),
        Run::Text(run) => run(agent, &msg),
    };
    outcome.unwrap_or_else(|error| {
        Answer::Json(reply::failure(format!(
            "Task {} failed: {error}",
            task.name
        )))
    })
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
    }
}
