//! One collection: vmware_exporter's metrics of one vSphere host, read
//! through the agent (from its mirror when in sync, from vCenter
//! otherwise) and the performance keeper's newest samples, computed as
//! vmware_exporter 0.18.4 computes them (which objects, which labels,
//! which values), written in the text format.

use super::config::CollectOnly;
use super::families::{
    perf_family, Group, Spec, FAMILIES, HOST_COUNTERS, HOST_LABELS, VM_COUNTERS, VM_LABELS,
};
use super::perf::Samples;
use super::text::{Family, Type};
use crate::agent::perf::instant_of;
use crate::agent::reads;
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::property::{ObjectContent, Scope};
use crate::vsphere::soap::MoRef;
use crate::vsphere::xml::Node;
use std::collections::HashMap;
use std::time::Instant;

/// What one collection made.
#[derive(Debug, Default)]
pub struct Collected {
    /// The families, in vmware_exporter's order.
    pub families: Vec<Family>,
    /// The objects read, by managed type.
    pub objects: Vec<(&'static str, usize)>,
    /// The powered-on VMs with their labels: whose counters the keeper
    /// reads and the performance families show.
    pub perf_vms: Vec<(MoRef, Vec<String>)>,
    /// The powered-on hosts with their labels.
    pub perf_hosts: Vec<(MoRef, Vec<String>)>,
}

/// The managed types of the inventory's tree above hosts and datastores.
const TREE_KINDS: &[&str] = &[
    "Datacenter",
    "Folder",
    "ClusterComputeResource",
    "ComputeResource",
    "StoragePod",
];

/// The most parents followed up to a datacenter.
const MOST_LEVELS: usize = 64;

struct TreeNode {
    name: String,
    parent: Option<MoRef>,
}

/// The tree above hosts and datastores: each object's name and parent.
struct Tree {
    nodes: HashMap<MoRef, TreeNode>,
}

impl Tree {
    /// The datacenter `start` is in (itself included).
    fn datacenter(&self, start: Option<&MoRef>) -> Option<&str> {
        let mut at = start?;
        for _ in 0..MOST_LEVELS {
            let node = self.nodes.get(at)?;
            if at.kind == "Datacenter" {
                return Some(&node.name);
            }
            at = node.parent.as_ref()?;
        }
        None
    }

    fn name(&self, object: &MoRef) -> Option<&str> {
        self.nodes.get(object).map(|node| node.name.as_str())
    }
}

fn text<'a>(content: &'a ObjectContent, path: &str) -> Option<&'a str> {
    content.get(path).map(|node| node.text.as_str())
}

fn number(content: &ObjectContent, path: &str) -> Option<f64> {
    content.get(path).and_then(node_number)
}

fn node_number(node: &Node) -> Option<f64> {
    node.text.trim().parse::<f64>().ok()
}

fn boolean(content: &ObjectContent, path: &str) -> Option<bool> {
    text(content, path).map(|text| text.trim() == "true")
}

fn reference(content: &ObjectContent, path: &str) -> Option<MoRef> {
    content.get(path).and_then(MoRef::from_node)
}

/// An `xsd:dateTime` as seconds since the epoch, to the microsecond (as
/// Python's `datetime` keeps it).
fn epoch(text: &str) -> Option<f64> {
    let (seconds, nanos) = instant_of(text)?;
    let micros = i128::from(seconds) * 1_000_000 + i128::from(nanos / 1000);
    Some(micros as f64 / 1e6)
}

/// The families of the groups `collect` turns on, indexed by name.
struct Families {
    list: Vec<Family>,
    index: HashMap<&'static str, usize>,
}

impl Families {
    fn new(collect: &CollectOnly) -> Families {
        let mut families = Families {
            list: Vec::new(),
            index: HashMap::new(),
        };
        // vmware_exporter's order: its `collect_only` keys'.
        let groups = [
            Group::Vms,
            Group::VmGuests,
            Group::Datastores,
            Group::Hosts,
            Group::Snapshots,
        ];
        for group in groups {
            if !group.collected(collect) {
                continue;
            }
            for spec in FAMILIES.iter().filter(|spec| spec.group == group) {
                families.add(spec);
            }
        }
        families
    }

    fn add(&mut self, spec: &'static Spec) {
        let labels: Vec<&str> = spec
            .group
            .labels()
            .iter()
            .chain(spec.extra.iter())
            .copied()
            .collect();
        self.index.insert(spec.name, self.list.len());
        self.list
            .push(Family::new(spec.name, spec.help, Type::Gauge, &labels));
    }

    /// Adds a sample to family `name`: the object's labels, then `extra`.
    fn sample(&mut self, name: &str, labels: &[String], extra: &[&str], value: f64) {
        let Some(index) = self.index.get(name) else {
            return;
        };
        let values: Vec<&str> = labels
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        self.list[*index].sample(&values, value);
    }
}

/// Reads `paths` of every `kind` object through the agent.
fn read_all(
    agent: &Agent,
    kind: &str,
    paths: &[&str],
    deadline: Instant,
) -> Result<Vec<ObjectContent>, Error> {
    let mut found = Vec::new();
    reads::retrieve(agent, kind, Scope::All, paths, deadline, &mut |content| {
        found.push(content);
        Ok(())
    })?;
    Ok(found)
}

const HOST_PATHS: &[&str] = &[
    "name",
    "parent",
    "summary.config.name",
    "summary.hardware.numCpuCores",
    "summary.hardware.cpuMhz",
    "summary.hardware.memorySize",
    "summary.config.product.version",
    "summary.config.product.build",
    "runtime.powerState",
    "runtime.standbyMode",
    "runtime.bootTime",
    "runtime.connectionState",
    "runtime.inMaintenanceMode",
    "summary.quickStats.overallCpuUsage",
    "summary.quickStats.overallMemoryUsage",
    "summary.hardware.cpuModel",
    "summary.hardware.model",
    "runtime.healthSystemRuntime.systemHealthInfo.numericSensorInfo",
    "runtime.healthSystemRuntime.hardwareStatusInfo.cpuStatusInfo",
    "runtime.healthSystemRuntime.hardwareStatusInfo.memoryStatusInfo",
];

const DATASTORE_PATHS: &[&str] = &[
    "name",
    "parent",
    "summary.capacity",
    "summary.freeSpace",
    "summary.uncommitted",
    "summary.maintenanceMode",
    "summary.type",
    "summary.accessible",
    "host",
    "vm",
];

fn vm_paths(collect: &CollectOnly) -> Vec<&'static str> {
    let mut paths = vec![
        "name",
        "runtime.host",
        "parent",
        "summary.config.vmPathName",
    ];
    if collect.vms {
        paths.extend([
            "runtime.powerState",
            "runtime.bootTime",
            "summary.config.numCpu",
            "summary.config.memorySizeMB",
            "runtime.maxCpuUsage",
            "summary.config.template",
        ]);
    }
    if collect.vmguests {
        paths.extend([
            "guest.disk",
            "guest.toolsStatus",
            "guest.toolsVersion",
            "guest.toolsVersionStatus2",
        ]);
    }
    if collect.snapshots {
        paths.push("snapshot");
    }
    paths
}

/// The performance families of `collected`'s powered-on VMs and hosts
/// (for the groups `collect` turns on), with the samples in `samples`
/// (none: the families are written without samples).
pub fn perf_families(
    collected: &Collected,
    collect: &CollectOnly,
    samples: Option<&Samples>,
) -> Vec<Family> {
    let mut families = Vec::new();
    let groups = [
        (
            collect.vms,
            "vmware_vm_",
            VM_COUNTERS,
            VM_LABELS,
            &collected.perf_vms,
            samples.map(|samples| &samples.vms),
        ),
        (
            collect.hosts,
            "vmware_host_",
            HOST_COUNTERS,
            HOST_LABELS,
            &collected.perf_hosts,
            samples.map(|samples| &samples.hosts),
        ),
    ];
    for (on, prefix, counters, labels, entities, values) in groups {
        if !on {
            continue;
        }
        let start = families.len();
        for counter in counters {
            let name = perf_family(prefix, counter);
            families.push(Family::new(&name, &name, Type::Gauge, labels));
        }
        let Some(values) = values else {
            continue;
        };
        for (entity, entity_labels) in entities {
            let Some(found) = values.get(entity) else {
                continue;
            };
            let label_values: Vec<&str> = entity_labels.iter().map(String::as_str).collect();
            for (offset, value) in found.iter().enumerate() {
                if let Some(value) = value {
                    families[start + offset].sample(&label_values, *value);
                }
            }
        }
    }
    families
}

/// Collects the metrics `collect` asks for from `agent`'s host, all but
/// the performance families ([`perf_families`]).
pub fn collect(
    agent: &Agent,
    collect: &CollectOnly,
    deadline: Instant,
) -> Result<Collected, Error> {
    let mut collected = Collected::default();
    let mut families = Families::new(collect);

    let mut tree = Tree {
        nodes: HashMap::new(),
    };
    for kind in TREE_KINDS {
        let objects = read_all(agent, kind, &["name", "parent"], deadline)?;
        collected.objects.push((kind, objects.len()));
        for content in objects {
            let node = TreeNode {
                name: text(&content, "name").unwrap_or_default().to_owned(),
                parent: reference(&content, "parent"),
            };
            tree.nodes.insert(content.obj, node);
        }
    }

    // Hosts: needed for the VMs' labels whatever is collected.
    let host_paths: &[&str] = if collect.hosts {
        HOST_PATHS
    } else {
        &HOST_PATHS[..3]
    };
    let hosts = read_all(agent, "HostSystem", host_paths, deadline)?;
    collected.objects.push(("HostSystem", hosts.len()));
    let mut host_labels: HashMap<&MoRef, [String; 3]> = HashMap::new();
    for host in &hosts {
        let parent = reference(host, "parent");
        let Some(dc) = tree.datacenter(parent.as_ref()) else {
            continue;
        };
        let cluster = parent
            .as_ref()
            .filter(|parent| parent.kind == "ClusterComputeResource")
            .and_then(|parent| tree.name(parent))
            .unwrap_or("");
        let name = text(host, "summary.config.name").unwrap_or_default();
        host_labels.insert(
            &host.obj,
            [
                name.trim_end_matches('.').to_owned(),
                dc.to_owned(),
                cluster.to_owned(),
            ],
        );
    }

    if collect.vms || collect.vmguests || collect.snapshots {
        let vms = read_all(agent, "VirtualMachine", &vm_paths(collect), deadline)?;
        collected.objects.push(("VirtualMachine", vms.len()));
        for vm in &vms {
            let labels = vm_labels(vm, &host_labels);
            let powered_on = text(vm, "runtime.powerState") == Some("poweredOn");
            // A VM being cloned has no host yet: vmware_exporter leaves it
            // out, but not of the performance families.
            if vm.get("runtime.host").is_some() {
                vm_samples(&mut families, vm, &labels);
            }
            if collect.vms && powered_on {
                collected.perf_vms.push((vm.obj.clone(), labels));
            }
        }
    }

    if collect.datastores {
        let datastores = read_all(agent, "Datastore", DATASTORE_PATHS, deadline)?;
        collected.objects.push(("Datastore", datastores.len()));
        // Each datastore is labelled by its own datacenter and pod.
        // vmware_exporter looks them up by name, so two datastores of one
        // name in two datacenters both got the last one's labels: one
        // series twice, which Prometheus refuses.
        for datastore in &datastores {
            let parent = reference(datastore, "parent");
            let Some(dc) = tree.datacenter(parent.as_ref()) else {
                continue;
            };
            let pod = parent
                .as_ref()
                .filter(|parent| parent.kind == "StoragePod")
                .and_then(|parent| tree.name(parent))
                .unwrap_or("");
            let name = text(datastore, "name").unwrap_or_default();
            let labels = [name.to_owned(), dc.to_owned(), pod.to_owned()];
            datastore_samples(&mut families, datastore, &labels);
        }
    }

    if collect.hosts {
        for host in &hosts {
            let Some(labels) = host_labels.get(&host.obj) else {
                continue;
            };
            host_samples(&mut families, host, labels);
            if text(host, "runtime.powerState") == Some("poweredOn") {
                collected
                    .perf_hosts
                    .push((host.obj.clone(), labels.to_vec()));
            }
        }
    }
    collected.families = families.list;
    Ok(collected)
}

/// A VM's labels: its name, its datastore (from the path of its `.vmx`),
/// its host's three labels; `n/a` for what is missing.
fn vm_labels(vm: &ObjectContent, host_labels: &HashMap<&MoRef, [String; 3]>) -> Vec<String> {
    let mut labels = Vec::with_capacity(VM_LABELS.len());
    labels.push(text(vm, "name").unwrap_or_default().to_owned());
    labels.push(match text(vm, "summary.config.vmPathName") {
        Some(path) => datastore_of_path(path).to_owned(),
        None => "n/a".to_owned(),
    });
    if let Some(host) = reference(vm, "runtime.host") {
        if let Some(host_labels) = host_labels.get(&host) {
            labels.extend(host_labels.iter().cloned());
        }
    }
    while labels.len() < VM_LABELS.len() {
        labels.push("n/a".to_owned());
    }
    labels
}

/// `[datastore] dir/vm.vmx` gives `datastore`, as vmware_exporter cuts it
/// (without `]`, everything but the first and last character).
fn datastore_of_path(path: &str) -> &str {
    let Some(rest) = path.strip_prefix('[') else {
        return path;
    };
    match rest.find(']') {
        Some(end) => &rest[..end],
        None => {
            let mut chars = rest.chars();
            chars.next_back();
            chars.as_str()
        }
    }
}

fn vm_samples(families: &mut Families, vm: &ObjectContent, labels: &[String]) {
    if let Some(state) = text(vm, "runtime.powerState") {
        let on = state == "poweredOn";
        families.sample(
            "vmware_vm_power_state",
            labels,
            &[],
            if on { 1.0 } else { 0.0 },
        );
        if on {
            if let Some(boot) = text(vm, "runtime.bootTime").and_then(epoch) {
                families.sample("vmware_vm_boot_timestamp_seconds", labels, &[], boot);
            }
        }
    }
    for (path, family) in [
        ("summary.config.numCpu", "vmware_vm_num_cpu"),
        ("summary.config.memorySizeMB", "vmware_vm_memory_max"),
        ("runtime.maxCpuUsage", "vmware_vm_max_cpu_usage"),
    ] {
        if let Some(value) = number(vm, path) {
            families.sample(family, labels, &[], value);
        }
    }
    if let Some(template) = boolean(vm, "summary.config.template") {
        families.sample(
            "vmware_vm_template",
            labels,
            &[],
            if template { 1.0 } else { 0.0 },
        );
    }
    if let Some(disks) = vm.get("guest.disk") {
        for disk in &disks.children {
            let path = disk.child_text("diskPath").unwrap_or_default();
            for (field, family) in [
                ("freeSpace", "vmware_vm_guest_disk_free"),
                ("capacity", "vmware_vm_guest_disk_capacity"),
            ] {
                if let Some(value) = disk.child(field).and_then(node_number) {
                    families.sample(family, labels, &[path], value);
                }
            }
        }
    }
    for (path, family) in [
        ("guest.toolsStatus", "vmware_vm_guest_tools_running_status"),
        ("guest.toolsVersion", "vmware_vm_guest_tools_version"),
        (
            "guest.toolsVersionStatus2",
            "vmware_vm_guest_tools_version_status",
        ),
    ] {
        if let Some(value) = text(vm, path) {
            families.sample(family, labels, &[value], 1.0);
        }
    }
    if let Some(snapshot) = vm.get("snapshot") {
        let mut found = Vec::new();
        for tree in snapshot
            .children
            .iter()
            .filter(|child| child.name == "rootSnapshotList")
        {
            snapshots(tree, &mut found, 0);
        }
        families.sample("vmware_vm_snapshots", labels, &[], found.len() as f64);
        for (name, created) in found {
            families.sample(
                "vmware_vm_snapshot_timestamp_seconds",
                labels,
                &[name],
                created,
            );
        }
    }
}

/// A snapshot tree's snapshots, depth first (each before its children),
/// with their creation times.
fn snapshots<'a>(tree: &'a Node, found: &mut Vec<(&'a str, f64)>, depth: usize) {
    if depth > MOST_LEVELS {
        return;
    }
    let name = tree.child_text("name").unwrap_or_default();
    let created = tree
        .child_text("createTime")
        .and_then(epoch)
        .unwrap_or(f64::NAN);
    found.push((name, created));
    for child in tree
        .children
        .iter()
        .filter(|child| child.name == "childSnapshotList")
    {
        snapshots(child, found, depth + 1);
    }
}

fn datastore_samples(families: &mut Families, datastore: &ObjectContent, labels: &[String]) {
    let capacity = number(datastore, "summary.capacity").unwrap_or(0.0);
    let free = number(datastore, "summary.freeSpace").unwrap_or(0.0);
    let uncommitted = number(datastore, "summary.uncommitted").unwrap_or(0.0);
    families.sample("vmware_datastore_capacity_size", labels, &[], capacity);
    families.sample("vmware_datastore_freespace_size", labels, &[], free);
    families.sample("vmware_datastore_uncommited_size", labels, &[], uncommitted);
    families.sample(
        "vmware_datastore_provisoned_size",
        labels,
        &[],
        capacity - free + uncommitted,
    );
    let count = |path: &str| {
        datastore
            .get(path)
            .map(|array| array.children.len())
            .unwrap_or(0) as f64
    };
    families.sample("vmware_datastore_hosts", labels, &[], count("host"));
    families.sample("vmware_datastore_vms", labels, &[], count("vm"));
    let mode = text(datastore, "summary.maintenanceMode").unwrap_or("unknown");
    families.sample("vmware_datastore_maintenance_mode", labels, &[mode], 1.0);
    let kind = text(datastore, "summary.type").unwrap_or("normal");
    families.sample("vmware_datastore_type", labels, &[kind], 1.0);
    if let Some(accessible) = boolean(datastore, "summary.accessible") {
        let value = if accessible { 1.0 } else { 0.0 };
        families.sample("vmware_datastore_accessible", labels, &[], value);
    }
}

/// `value` times ten to the `modifier`, as Python computes
/// `int(value) * (10 ** int(modifier))`.
fn scaled(value: f64, modifier: i32) -> f64 {
    if modifier >= 0 {
        value * 10f64.powi(modifier)
    } else {
        value * 10f64.powf(f64::from(modifier))
    }
}

fn sensor_samples(families: &mut Families, host: &ObjectContent, labels: &[String]) {
    let status_of = |key: &str| match key.to_lowercase().as_str() {
        "red" => Some(0.0),
        "yellow" => Some(1.0),
        "green" => Some(2.0),
        "unknown" => Some(3.0),
        _ => None,
    };
    if let Some(sensors) =
        host.get("runtime.healthSystemRuntime.systemHealthInfo.numericSensorInfo")
    {
        for sensor in &sensors.children {
            let Some(status) = sensor
                .child("healthState")
                .and_then(|state| state.child_text("key"))
                .and_then(status_of)
            else {
                continue;
            };
            let name = sensor.child_text("name").unwrap_or("None");
            let kind = sensor.child_text("sensorType").unwrap_or("None");
            families.sample("vmware_host_sensor_state", labels, &[name, kind], status);
            let unit = sensor
                .child_text("baseUnits")
                .unwrap_or_default()
                .to_lowercase();
            let Some(reading) = sensor
                .child_text("currentReading")
                .and_then(|text| text.trim().parse::<i64>().ok())
            else {
                continue;
            };
            let modifier = sensor
                .child_text("unitModifier")
                .and_then(|text| text.trim().parse::<i32>().ok())
                .unwrap_or(0);
            let family = match unit.as_str() {
                "rpm" => "vmware_host_sensor_fan",
                "degrees c" => "vmware_host_sensor_temperature",
                "volts" => "vmware_host_sensor_power_voltage",
                "amps" => "vmware_host_sensor_power_current",
                "watts" => "vmware_host_sensor_power_watt",
                "redundancy-discrete" => {
                    families.sample(
                        "vmware_host_sensor_redundancy",
                        labels,
                        &[name],
                        reading as f64,
                    );
                    continue;
                }
                _ => continue,
            };
            families.sample(
                family,
                labels,
                &[name],
                scaled(reading as f64, modifier.clamp(-300, 300)),
            );
        }
    }
    for path in [
        "runtime.healthSystemRuntime.hardwareStatusInfo.cpuStatusInfo",
        "runtime.healthSystemRuntime.hardwareStatusInfo.memoryStatusInfo",
    ] {
        let Some(elements) = host.get(path) else {
            continue;
        };
        for element in &elements.children {
            let Some(status) = element
                .child("status")
                .and_then(|state| state.child_text("key"))
                .and_then(status_of)
            else {
                continue;
            };
            let name = element.child_text("name").unwrap_or("None");
            families.sample("vmware_host_sensor_state", labels, &[name, "n/a"], status);
        }
    }
}

fn host_samples(families: &mut Families, host: &ObjectContent, labels: &[String]) {
    sensor_samples(families, host, labels);
    let standby = text(host, "runtime.standbyMode");
    families.sample(
        "vmware_host_standby_mode",
        labels,
        &[standby.unwrap_or("unknown")],
        if standby == Some("in") { 1.0 } else { 0.0 },
    );
    let on = text(host, "runtime.powerState") == Some("poweredOn");
    families.sample(
        "vmware_host_power_state",
        labels,
        &[],
        if on { 1.0 } else { 0.0 },
    );
    let connection = text(host, "runtime.connectionState").unwrap_or("unknown");
    families.sample("vmware_host_connection_state", labels, &[connection], 1.0);
    if let Some(maintenance) = boolean(host, "runtime.inMaintenanceMode") {
        let value = if maintenance { 1.0 } else { 0.0 };
        families.sample("vmware_host_maintenance_mode", labels, &[], value);
    }
    if !on {
        return;
    }
    if let Some(boot) = text(host, "runtime.bootTime").and_then(epoch) {
        families.sample("vmware_host_boot_timestamp_seconds", labels, &[], boot);
    }
    if let Some(usage) = number(host, "summary.quickStats.overallCpuUsage") {
        families.sample("vmware_host_cpu_usage", labels, &[], usage);
    }
    let cores = number(host, "summary.hardware.numCpuCores").filter(|cores| *cores != 0.0);
    if let Some(cores) = cores {
        families.sample("vmware_host_num_cpu", labels, &[], cores);
        if let Some(mhz) = number(host, "summary.hardware.cpuMhz").filter(|mhz| *mhz != 0.0) {
            families.sample("vmware_host_cpu_max", labels, &[], cores * mhz);
        }
    }
    if let Some(usage) = number(host, "summary.quickStats.overallMemoryUsage") {
        families.sample("vmware_host_memory_usage", labels, &[], usage);
    }
    if let Some(size) = number(host, "summary.hardware.memorySize") {
        families.sample(
            "vmware_host_memory_max",
            labels,
            &[],
            size / 1024.0 / 1024.0,
        );
    }
    let version = text(host, "summary.config.product.version").unwrap_or("unknown");
    let build = text(host, "summary.config.product.build").unwrap_or("unknown");
    families.sample("vmware_host_product_info", labels, &[version, build], 1.0);
    let cpu_model = text(host, "summary.hardware.cpuModel").unwrap_or("unknown");
    let model = text(host, "summary.hardware.model").unwrap_or("unknown");
    families.sample(
        "vmware_host_hardware_info",
        labels,
        &[model, cpu_model],
        1.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_names_are_cut_from_the_path_as_vmware_exporter_cuts_them() {
        assert_eq!(datastore_of_path("[LocalDS_0] vm/vm.vmx"), "LocalDS_0");
        assert_eq!(datastore_of_path("[] vm.vmx"), "");
        assert_eq!(datastore_of_path("[abc"), "ab");
        assert_eq!(datastore_of_path("plain/path.vmx"), "plain/path.vmx");
    }

    #[test]
    fn times_keep_microseconds() {
        assert_eq!(epoch("1970-01-01T00:00:01.5Z"), Some(1.5));
        assert_eq!(
            epoch("2021-03-01T00:00:00.1234567+01:00"),
            Some(1_614_553_200.123456)
        );
        assert_eq!(epoch("yesterday"), None);
    }

    #[test]
    fn sensor_readings_scale_as_in_python() {
        assert_eq!(scaled(4537.0, -2), 4537.0 * 0.01);
        assert_eq!(scaled(12.0, 2), 1200.0);
        assert_eq!(scaled(7.0, 0), 7.0);
    }
}
