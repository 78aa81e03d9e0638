//! vmware_exporter 0.18.4's metric families: names, help texts and label
//! names, by group, in the order it writes them. Its misspelt names
//! (`vmware_datastore_provisoned_size`, `..._uncommited_size`) are kept:
//! dashboards use them.

use super::config::CollectOnly;

/// The label names of VM families.
pub const VM_LABELS: &[&str] = &["vm_name", "ds_name", "host_name", "dc_name", "cluster_name"];
/// The label names of datastore families.
pub const DATASTORE_LABELS: &[&str] = &["ds_name", "dc_name", "ds_cluster"];
/// The label names of host families.
pub const HOST_LABELS: &[&str] = &["host_name", "dc_name", "cluster_name"];

/// A group of families (`collect_only`'s keys; the performance families
/// come with `vms` and `hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// VM state and configuration.
    Vms,
    /// Guest disks and tools.
    VmGuests,
    /// Snapshots.
    Snapshots,
    /// Datastores.
    Datastores,
    /// Hosts.
    Hosts,
}

impl Group {
    /// Whether `collect` turns this group on.
    pub fn collected(self, collect: &CollectOnly) -> bool {
        match self {
            Group::Vms => collect.vms,
            Group::VmGuests => collect.vmguests,
            Group::Snapshots => collect.snapshots,
            Group::Datastores => collect.datastores,
            Group::Hosts => collect.hosts,
        }
    }

    /// The labels every family of the group starts with.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Group::Vms | Group::VmGuests | Group::Snapshots => VM_LABELS,
            Group::Datastores => DATASTORE_LABELS,
            Group::Hosts => HOST_LABELS,
        }
    }
}

/// One family: its group, name, help text and the labels after the group's.
#[derive(Debug)]
pub struct Spec {
    /// Its group.
    pub group: Group,
    /// Its name.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Its labels after the group's.
    pub extra: &'static [&'static str],
}

const fn spec(
    group: Group,
    name: &'static str,
    help: &'static str,
    extra: &'static [&'static str],
) -> Spec {
    Spec {
        group,
        name,
        help,
        extra,
    }
}

use Group::*;

/// Every family that is not a performance counter, by group (see
/// `collect` for the order of the groups).
pub const FAMILIES: &[Spec] = &[
    spec(Vms, "vmware_vm_power_state", "VMWare VM Power state (On / Off)", &[]),
    spec(Vms, "vmware_vm_boot_timestamp_seconds", "VMWare VM boot time in seconds", &[]),
    spec(Vms, "vmware_vm_num_cpu", "VMWare Number of processors in the virtual machine", &[]),
    spec(Vms, "vmware_vm_memory_max", "VMWare VM Memory Max availability in Mbytes", &[]),
    spec(Vms, "vmware_vm_max_cpu_usage", "VMWare VM Cpu Max availability in hz", &[]),
    spec(Vms, "vmware_vm_template", "VMWare VM Template (true / false)", &[]),
    spec(VmGuests, "vmware_vm_guest_disk_free", "Disk metric per partition", &["partition"]),
    spec(VmGuests, "vmware_vm_guest_disk_capacity", "Disk capacity metric per partition", &["partition"]),
    spec(VmGuests, "vmware_vm_guest_tools_running_status", "VM tools running status", &["tools_status"]),
    spec(VmGuests, "vmware_vm_guest_tools_version", "VM tools version", &["tools_version"]),
    spec(
        VmGuests,
        "vmware_vm_guest_tools_version_status",
        "VM tools version status",
        &["tools_version_status"],
    ),
    spec(Snapshots, "vmware_vm_snapshots", "VMWare current number of existing snapshots", &[]),
    spec(
        Snapshots,
        "vmware_vm_snapshot_timestamp_seconds",
        "VMWare Snapshot creation time in seconds",
        &["vm_snapshot_name"],
    ),
    spec(Datastores, "vmware_datastore_capacity_size", "VMWare Datasore capacity in bytes", &[]),
    spec(Datastores, "vmware_datastore_freespace_size", "VMWare Datastore freespace in bytes", &[]),
    spec(Datastores, "vmware_datastore_uncommited_size", "VMWare Datastore uncommitted in bytes", &[]),
    spec(Datastores, "vmware_datastore_provisoned_size", "VMWare Datastore provisoned in bytes", &[]),
    spec(Datastores, "vmware_datastore_hosts", "VMWare Hosts number using this datastore", &[]),
    spec(Datastores, "vmware_datastore_vms", "VMWare Virtual Machines count per datastore", &[]),
    spec(
        Datastores,
        "vmware_datastore_maintenance_mode",
        "VMWare datastore maintenance mode (normal / inMaintenance / enteringMaintenance)",
        &["mode"],
    ),
    spec(
        Datastores,
        "vmware_datastore_type",
        "VMWare datastore type (VMFS, NetworkFileSystem, NetworkFileSystem41, CIFS, VFAT, VSAN, VFFS)",
        &["ds_type"],
    ),
    spec(Datastores, "vmware_datastore_accessible", "VMWare datastore accessible (true / false)", &[]),
    spec(Hosts, "vmware_host_power_state", "VMWare Host Power state (On / Off)", &[]),
    spec(
        Hosts,
        "vmware_host_standby_mode",
        "VMWare Host Standby Mode (entering / exiting / in / none)",
        &["standby_mode_state"],
    ),
    spec(
        Hosts,
        "vmware_host_connection_state",
        "VMWare Host connection state (connected / disconnected / notResponding)",
        &["state"],
    ),
    spec(Hosts, "vmware_host_maintenance_mode", "VMWare Host maintenance mode (true / false)", &[]),
    spec(Hosts, "vmware_host_boot_timestamp_seconds", "VMWare Host boot time in seconds", &[]),
    spec(Hosts, "vmware_host_cpu_usage", "VMWare Host CPU usage in Mhz", &[]),
    spec(Hosts, "vmware_host_cpu_max", "VMWare Host CPU max availability in Mhz", &[]),
    spec(Hosts, "vmware_host_num_cpu", "VMWare Number of processors in the Host", &[]),
    spec(Hosts, "vmware_host_memory_usage", "VMWare Host Memory usage in Mbytes", &[]),
    spec(Hosts, "vmware_host_memory_max", "VMWare Host Memory Max availability in Mbytes", &[]),
    spec(
        Hosts,
        "vmware_host_product_info",
        "A metric with a constant \"1\" value labeled by version and build from os the host.",
        &["version", "build"],
    ),
    spec(
        Hosts,
        "vmware_host_hardware_info",
        "A metric with a constant \"1\" value labeled by model and cpu model from the host.",
        &["hardware_model", "hardware_cpu_model"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_state",
        "VMWare sensor state value (0=red / 1=yellow / 2=green / 3=unknown) labeled by sensor name and type from the host.",
        &["name", "type"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_fan",
        "VMWare sensor fan speed value in RPM labeled by sensor name from the host.",
        &["name"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_temperature",
        "VMWare sensor temperature value in degree C labeled by sensor name from the host.",
        &["name"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_power_voltage",
        "VMWare sensor power voltage value in volt labeled by sensor name from the host.",
        &["name"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_power_current",
        "VMWare sensor power current value in amp labeled by sensor name from the host.",
        &["name"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_power_watt",
        "VMWare sensor power watt value in watt labeled by sensor name from the host.",
        &["name"],
    ),
    spec(
        Hosts,
        "vmware_host_sensor_redundancy",
        "VMWare sensor redundancy value (1=ok / 0=ko) labeled by sensor name from the host.",
        &["name"],
    ),
];

/// The VM performance counters, as vmware_exporter asks for them; the
/// family is `vmware_vm_` and the counter with `_` for `.`.
pub const VM_COUNTERS: &[&str] = &[
    "cpu.ready.summation",
    "cpu.maxlimited.summation",
    "cpu.usage.average",
    "cpu.usagemhz.average",
    "cpu.costop.summation",
    "cpu.idle.summation",
    "cpu.demand.average",
    "mem.usage.average",
    "mem.consumed.average",
    "mem.active.average",
    "mem.swapped.average",
    "mem.vmmemctl.average",
    "disk.maxTotalLatency.latest",
    "disk.usage.average",
    "disk.read.average",
    "disk.write.average",
    "net.received.average",
    "net.transmitted.average",
    "net.multicastRx.summation",
    "net.multicastTx.summation",
    "net.broadcastTx.summation",
    "net.broadcastRx.summation",
    "net.droppedRx.summation",
    "net.droppedTx.summation",
];

/// The host performance counters (family prefix `vmware_host_`).
pub const HOST_COUNTERS: &[&str] = &[
    "cpu.costop.summation",
    "cpu.demand.average",
    "cpu.idle.summation",
    "cpu.ready.summation",
    "cpu.swapwait.summation",
    "cpu.usage.average",
    "cpu.usagemhz.average",
    "cpu.used.summation",
    "disk.read.average",
    "disk.write.average",
    "mem.active.average",
    "mem.latency.average",
    "mem.swapin.average",
    "mem.swapinRate.average",
    "mem.swapout.average",
    "mem.swapoutRate.average",
    "mem.vmmemctl.average",
    "net.bytesRx.average",
    "net.bytesTx.average",
    "net.droppedRx.summation",
    "net.droppedTx.summation",
    "net.errorsRx.summation",
    "net.errorsTx.summation",
    "net.usage.average",
];

/// A performance family's name: `prefix` and the counter, `.` made `_`.
pub fn perf_family(prefix: &str, counter: &str) -> String {
    format!("{prefix}{}", counter.replace('.', "_"))
}
