//! The performance tasks: the counter and historical interval tables
//! (`perf.metric.info`, `perf.interval.info`), the metrics an object offers
//! (`<kind>.perf.metric.info`) and its samples (`<kind>.perf.metric.get`).
//!
//! Samples come back oldest first, and they are the newest `max-sample` ones:
//! vCenter ignores `maxSample` for historical intervals and answers with the
//! whole interval, so the agent keeps the newest samples itself.
//!
//! With the agent's `mirror` option on (the default), real-time samples come
//! from a per-host cache that batched `QueryPerf` calls refresh
//! (`realtime`, which says when it answers and when it does not), and each
//! object's provider summary is read once; historical intervals are asked
//! for per request. With it off, every request makes its own `QueryPerf`.
//! `samples` is the format both paths share.

mod latest;
mod realtime;
pub(crate) mod samples;

pub(crate) use latest::{latest, REALTIME_INTERVAL};
pub(crate) use samples::instant_of;

use crate::agent::inventory::{self, MISSING, MISSING_COLON};
use crate::agent::reply;
use crate::agent::request::{Msg, TaskError, TaskResult};
use crate::agent::Agent;
use crate::error::{Error, VSphereKind};
use crate::sync::Lock;
use crate::vsphere::property::ObjectContent;
use crate::vsphere::session::{Connection, Session};
use crate::vsphere::soap::{element, MoRef};
use crate::vsphere::typetable::Kind;
use crate::vsphere::value;
use crate::vsphere::xml::Node;
use realtime::{Query, Realtime, Step};
use samples::{write_query_spec, EntityMetric, MetricId};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RETRIEVED: &str = "Successfully retrieved performance metrics";
const UNKNOWN_COUNTER: &str = "Unknown performance counter requested";
const INVALID_MESSAGE: &str = "Invalid message, cannot retrieve performance metrics";

/// One performance counter of the host's table.
pub(crate) struct Counter {
    pub key: i64,
    /// `group.name.unit.rollup`, e.g. `cpu.usagemhz.megaHertz.average`.
    pub name: String,
    /// The counter as `perf.metric.info` shows it.
    pub info: Value,
}

/// One historical interval (`Past day`, ...).
struct Interval {
    name: String,
    sampling_period: i64,
    info: Value,
}

/// What a performance provider supports (`QueryPerfProviderSummary`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Summary {
    current_supported: bool,
    refresh_rate: i64,
}

/// The performance manager's tables, read once and kept for the lookup TTL.
pub(crate) struct Tables {
    counters: Vec<Counter>,
    by_key: HashMap<i64, usize>,
    by_name: HashMap<String, usize>,
    intervals: Vec<Interval>,
    /// When they were read (the agent drops them when its connection changes).
    read_at: Instant,
}

impl Tables {
    pub(crate) fn counter_named(&self, name: &str) -> Option<&Counter> {
        self.by_name.get(name).map(|index| &self.counters[*index])
    }

    pub(crate) fn counter_name(&self, key: i64) -> String {
        self.by_key
            .get(&key)
            .map(|index| self.counters[*index].name.clone())
            .unwrap_or_else(|| key.to_string())
    }
}

/// The most provider summaries kept; beyond, the expired ones go.
const MOST_SUMMARIES: usize = 100_000;

/// The agent's performance state for its host: the tables, each object's
/// provider summary (with when it was read) and the real-time cache.
#[derive(Default)]
pub(crate) struct TableCache {
    slot: Mutex<Option<Arc<Tables>>>,
    summaries: Mutex<HashMap<MoRef, (Summary, Instant)>>,
    realtime: Realtime,
}

impl TableCache {
    /// Forgets everything: the connection changed, maybe to another host.
    pub fn clear(&self) {
        *self.slot.locked() = None;
        self.summaries.locked().clear();
        self.realtime.clear();
    }
}

/// The tables, read over `connection` when missing or older than the lookup
/// TTL ([`Agent::set_options`] drops them when the connection changes).
fn tables(
    agent: &Agent,
    connection: &Arc<Connection>,
    deadline: Instant,
) -> Result<Arc<Tables>, Error> {
    let ttl = agent.cache.ttl();
    if let Some(tables) = agent.perf.slot.locked().as_ref() {
        if tables.read_at.elapsed() < ttl {
            return Ok(tables.clone());
        }
    }
    let session = connection.session(deadline)?;
    let manager = session.service("perfManager")?;
    let content = crate::agent::reads::object_properties(
        agent,
        &manager,
        &["perfCounter", "historicalInterval"],
        deadline,
    )?;
    let tables = Arc::new(read_tables(content.as_ref()));
    if !ttl.is_zero() {
        *agent.perf.slot.locked() = Some(tables.clone());
    }
    Ok(tables)
}

pub(crate) fn read_tables(content: Option<&ObjectContent>) -> Tables {
    let items = |path: &str| -> Vec<Value> {
        match content.and_then(|content| content.get(path)) {
            Some(node) => match value::property_value(node) {
                Value::Array(items) => items,
                _ => Vec::new(),
            },
            None => Vec::new(),
        }
    };
    let mut counters = Vec::new();
    for counter in items("perfCounter") {
        let key = counter.get("key").and_then(Value::as_i64).unwrap_or(-1);
        let name = format!(
            "{}.{}.{}.{}",
            description_key(&counter, "groupInfo"),
            description_key(&counter, "nameInfo"),
            description_key(&counter, "unitInfo"),
            counter
                .get("rollupType")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        let description = |field: &str| {
            let info = counter.get(field);
            let pick = |part: &str| {
                info.and_then(|info| info.get(part))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            json!({"label": pick("label"), "summary": pick("summary"), "key": pick("key")})
        };
        let pick = |field: &str| counter.get(field).cloned().unwrap_or(Value::Null);
        let info = json!({
            "key": key,
            "nameInfo": description("nameInfo"),
            "groupInfo": description("groupInfo"),
            "unitInfo": description("unitInfo"),
            "rollupType": pick("rollupType"),
            "statsType": pick("statsType"),
            "level": pick("level"),
            "perDeviceLevel": pick("perDeviceLevel"),
        });
        counters.push(Counter { key, name, info });
    }
    let mut by_key = HashMap::with_capacity(counters.len());
    let mut by_name = HashMap::with_capacity(counters.len());
    for (index, counter) in counters.iter().enumerate() {
        by_key.entry(counter.key).or_insert(index);
        by_name.entry(counter.name.clone()).or_insert(index);
    }
    let intervals = items("historicalInterval")
        .into_iter()
        .map(|interval| {
            let pick = |field: &str| interval.get(field).cloned().unwrap_or(Value::Null);
            Interval {
                name: interval
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                sampling_period: interval
                    .get("samplingPeriod")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                info: json!({
                    "enabled": pick("enabled"),
                    "key": pick("key"),
                    "length": pick("length"),
                    "level": pick("level"),
                    "name": pick("name"),
                    "samplingPeriod": pick("samplingPeriod"),
                }),
            }
        })
        .collect();
    Tables {
        counters,
        by_key,
        by_name,
        intervals,
        read_at: Instant::now(),
    }
}

fn description_key<'a>(counter: &'a Value, field: &str) -> &'a str {
    counter
        .get(field)
        .and_then(|info| info.get("key"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn perf_metric_info(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let connection = agent.connection()?;
    let tables = tables(agent, &connection, msg.deadline)?;
    let data: Vec<Value> = tables
        .counters
        .iter()
        .map(|counter| counter.info.clone())
        .collect();
    Ok(reply::success(
        "Successfully retrieved performance metrics info",
        Value::Array(data),
    ))
}

pub(crate) fn perf_interval_info(agent: &Agent, msg: &Msg<'_>) -> TaskResult<Value> {
    let connection = agent.connection()?;
    let tables = tables(agent, &connection, msg.deadline)?;
    let data: Vec<Value> = tables
        .intervals
        .iter()
        .map(|interval| interval.info.clone())
        .collect();
    Ok(reply::success_msg_first(
        "Successfully retrieved performance historical intervals",
        Value::Array(data),
    ))
}

/// Calls a performance manager method with `args` (XML) and returns its
/// `returnval` elements.
fn call_manager(
    connection: &Connection,
    method: &str,
    args: String,
    deadline: Instant,
) -> Result<Vec<Node>, Error> {
    connection.call(
        method,
        &|session: &Session| session.service("perfManager"),
        &|_: &Session| Ok(args.clone()),
        deadline,
    )
}

/// The provider summary of `entity`. It does not change, so it is kept:
/// for the lookup TTL, as the tables are, and with the mirror on for as
/// long as the connection (so that a cached answer makes no call at all).
fn summary(
    agent: &Agent,
    connection: &Connection,
    entity: &MoRef,
    mirror: bool,
    deadline: Instant,
) -> Result<Summary, Error> {
    let ttl = agent.cache.ttl();
    let kept = |read_at: &Instant| mirror || read_at.elapsed() < ttl;
    if let Some((summary, read_at)) = agent.perf.summaries.locked().get(entity) {
        if kept(read_at) {
            return Ok(*summary);
        }
    }
    let mut args = String::new();
    entity.write(&mut args, "entity");
    let returned = call_manager(connection, "QueryPerfProviderSummary", args, deadline)?;
    let fields = returned
        .first()
        .map(|node| value::convert(node, Some(Kind::Data("PerfProviderSummary"))))
        .unwrap_or(Value::Null);
    let summary = Summary {
        current_supported: fields
            .get("currentSupported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        refresh_rate: fields
            .get("refreshRate")
            .and_then(Value::as_i64)
            .unwrap_or(-1),
    };
    if mirror || !ttl.is_zero() {
        let mut summaries = agent.perf.summaries.locked();
        if summaries.len() >= MOST_SUMMARIES {
            summaries.retain(|_, (_, read_at)| kept(read_at));
            if summaries.len() >= MOST_SUMMARIES {
                summaries.clear();
            }
        }
        summaries.insert(entity.clone(), (summary, Instant::now()));
    }
    Ok(summary)
}

/// The message's `counter-name`, when set.
pub(crate) fn counter_name(msg: &Msg<'_>) -> Option<String> {
    msg.truthy("counter-name")
        .map(|_| msg.text("counter-name").unwrap_or_default())
}

/// `<kind>.perf.metric.info`: the metrics (counter and instance) `kind`'s
/// object offers, real-time ones when it has real-time statistics.
pub(crate) fn entity_metric_info(agent: &Agent, msg: &Msg<'_>, kind: &str) -> TaskResult<Value> {
    let content = inventory::lookup(agent, msg, kind, &["name"], MISSING)?;
    let connection = agent.connection()?;
    let tables = tables(agent, &connection, msg.deadline)?;
    let wanted = match counter_name(msg) {
        Some(name) => match tables.counter_named(&name) {
            Some(counter) => Some(counter.key),
            None => return Err(TaskError::refuse(UNKNOWN_COUNTER)),
        },
        None => None,
    };
    let mirror = agent.mirror_on();
    let summary = summary(agent, &connection, &content.obj, mirror, msg.deadline)?;
    let mut args = String::new();
    content.obj.write(&mut args, "entity");
    if summary.current_supported {
        element(&mut args, "intervalId", &summary.refresh_rate.to_string());
    }
    let metrics = call_manager(&connection, "QueryAvailablePerfMetric", args, msg.deadline)
        .map_err(|error| {
            let name = inventory::property_json(&content, "name");
            cannot_retrieve(name.as_str().unwrap_or_default(), error)
        })?;
    let data: Vec<Value> = metrics
        .iter()
        .filter_map(|metric| {
            let key = metric.child_text("counterId")?.trim().parse::<i64>().ok()?;
            if wanted.is_some_and(|wanted| wanted != key) {
                return None;
            }
            let instance = metric.child_text("instance").unwrap_or("");
            Some(json!({"counterId": tables.counter_name(key), "instance": instance}))
        })
        .collect();
    Ok(reply::success_msg_first(RETRIEVED, Value::Array(data)))
}

/// The performance manager's `InvalidArgument` fault (a metric the object
/// does not have, an interval it does not keep) in py-vpoller's words.
fn cannot_retrieve(entity_name: &str, error: Error) -> TaskError {
    match error {
        Error::VSphere {
            kind: VSphereKind::Fault { name, text },
            ..
        } if name == "InvalidArgument" => TaskError::refuse(format!(
            "Cannot retrieve performance metrics for {entity_name}: {}",
            if text.is_empty() { name } else { text }
        )),
        other => other.into(),
    }
}

/// How a `<kind>.perf.metric.get` task checks its object first.
#[derive(Clone, Copy)]
pub(crate) enum Check {
    /// Nothing to check (datacenters, clusters, datastores).
    None,
    /// Powered on and connected; the word is the object's name in the
    /// failure text (`VM`, `Host`).
    Running(&'static str),
}

/// `max-sample` as Python's `int()` reads it (1 when unset); `None` when it
/// is not a whole number from 1 to 2^31-1.
pub(crate) fn max_sample(msg: &Msg<'_>) -> Option<i64> {
    let Some(value) = msg.truthy("max-sample") else {
        return Some(1);
    };
    let number = match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Value::String(text) => text.trim().replace('_', "").parse::<i64>().ok(),
        Value::Bool(true) => Some(1),
        _ => None,
    }?;
    (1..=i64::from(i32::MAX))
        .contains(&number)
        .then_some(number)
}

/// `<kind>.perf.metric.get`: the newest `max-sample` samples of one
/// counter (and instance) of the object, real-time unless `perf-interval`
/// names a historical interval.
pub(crate) fn entity_metric_get(
    agent: &Agent,
    msg: &Msg<'_>,
    kind: &str,
    check: Check,
) -> TaskResult<Value> {
    let paths: &[&str] = match check {
        Check::None => &["name"],
        Check::Running(_) => &["name", "runtime.powerState", "runtime.connectionState"],
    };
    let content = inventory::lookup(agent, msg, kind, paths, MISSING_COLON)?;
    if let Check::Running(what) = check {
        if inventory::property_json(&content, "runtime.powerState") != "poweredOn" {
            return Err(TaskError::refuse(format!(
                "{what} is not powered on, cannot get performance metrics"
            )));
        }
        if inventory::property_json(&content, "runtime.connectionState") != "connected" {
            return Err(TaskError::refuse(format!(
                "{what} is not connected, cannot get performance metrics"
            )));
        }
    }
    let Some(max_sample) = max_sample(msg) else {
        return Err(TaskError::refuse(INVALID_MESSAGE));
    };
    let instance = match msg.truthy("instance") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err(TaskError::refuse(INVALID_MESSAGE)),
        None => String::new(),
    };
    let interval_name = msg
        .truthy("perf-interval")
        .map(|_| msg.text("perf-interval").unwrap_or_default());
    let options = agent.options();
    let connection = agent.connection()?;
    let tables = tables(agent, &connection, msg.deadline)?;
    let summary = summary(
        agent,
        &connection,
        &content.obj,
        options.mirror,
        msg.deadline,
    )?;
    let entity_name = inventory::property_json(&content, "name");
    let entity_name = entity_name.as_str().unwrap_or_default();
    let interval_id = match &interval_name {
        None if !summary.current_supported => {
            return Err(TaskError::refuse(format!(
                "No historical performance interval provided for entity {entity_name}"
            )));
        }
        None => summary.refresh_rate,
        Some(name) => match tables
            .intervals
            .iter()
            .find(|interval| &interval.name == name)
        {
            Some(interval) => interval.sampling_period,
            None => {
                return Err(TaskError::refuse(format!(
                    "Historical interval {name} does not exists"
                )));
            }
        },
    };
    let Some(counter_name) = counter_name(msg) else {
        return Err(TaskError::refuse(UNKNOWN_COUNTER));
    };
    let Some(counter) = tables.counter_named(&counter_name) else {
        return Err(TaskError::refuse(UNKNOWN_COUNTER));
    };
    let metric = MetricId {
        counter: counter.key,
        instance,
    };
    let realtime = &agent.perf.realtime;
    let query = Query {
        entity: &content.obj,
        metric: &metric,
        max_sample,
        refresh_rate: interval_id,
        idle: Duration::from_secs(options.mirror_idle_s),
    };
    let cached = interval_name.is_none() && options.mirror && query.cacheable();
    let mut result = Vec::new();
    if cached {
        if let Some(samples) = from_cache(realtime, &connection, &query, msg.deadline) {
            if let Some(samples) = samples {
                samples.render(Some(&metric), &counter_name, max_sample, &mut result);
            }
            return Ok(reply::success_msg_first(RETRIEVED, Value::Array(result)));
        }
    }
    let mut args = String::new();
    write_query_spec(&mut args, &content.obj, max_sample, [&metric], interval_id);
    let asked_at = realtime.now();
    let returned = call_manager(&connection, "QueryPerf", args, msg.deadline)
        .map_err(|error| cannot_retrieve(entity_name, error))?;
    let returned: Vec<EntityMetric> = returned.iter().map(EntityMetric::read).collect();
    for samples in &returned {
        samples.render(None, &counter_name, max_sample, &mut result);
    }
    // Kept only when a cached answer renders the same: one entity, only
    // the metric asked for (a server that names it otherwise is asked
    // directly every time).
    if cached && returned.len() <= 1 && returned.iter().all(|samples| samples.only_of(&metric)) {
        let samples = returned.into_iter().next().map(Arc::new);
        realtime.registry().record_direct(&query, samples, asked_at);
    }
    Ok(reply::success_msg_first(RETRIEVED, Value::Array(result)))
}

/// The cached samples for `query` (`None` inside: the server had none), or
/// `None` when the request is to be answered directly. Refreshes the
/// entity's chunk, or waits for the request refreshing it, when its
/// samples are old (see `realtime`).
fn from_cache(
    realtime: &Realtime,
    connection: &Connection,
    query: &Query<'_>,
    deadline: Instant,
) -> Option<Option<Arc<EntityMetric>>> {
    let process = std::process::id();
    let mut after = None;
    loop {
        let now = realtime.now();
        let step = realtime.registry().lookup(query, now, after, process);
        match step {
            Step::Answer(samples) => return Some(samples),
            Step::Direct => return None,
            Step::Wait(started) => {
                realtime.wait(query.entity, started, process, deadline);
                after = Some(started);
            }
            Step::Refresh(batch) => {
                after = Some(batch.started());
                refresh(realtime, connection, batch, deadline);
            }
        }
    }
}

/// Makes one refreshing `QueryPerf` and reports it, as failed when it
/// fails or the thread unwinds.
fn refresh(
    realtime: &Realtime,
    connection: &Connection,
    batch: realtime::Batch,
    deadline: Instant,
) {
    /// Reports the refresh when dropped.
    struct Report<'a> {
        realtime: &'a Realtime,
        batch: realtime::Batch,
        fetched: Option<HashMap<MoRef, Arc<EntityMetric>>>,
    }
    impl Drop for Report<'_> {
        fn drop(&mut self) {
            self.realtime.finish(&self.batch, self.fetched.take());
        }
    }
    let mut report = Report {
        realtime,
        fetched: None,
        batch,
    };
    let args = report.batch.args();
    if let Ok(returned) = call_manager(connection, "QueryPerf", args, deadline) {
        report.fetched = Some(
            returned
                .iter()
                .filter_map(|node| {
                    let samples = EntityMetric::read(node);
                    Some((samples.entity.clone()?, Arc::new(samples)))
                })
                .collect(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::realtime::Limits;
    use super::*;
    use crate::agent::AgentOptions;
    use crate::vsphere::Verification;
    use vpoller_standin::fake_vsphere::PerfVCenter;

    const PERIOD: Duration = Duration::from_secs(20);

    fn agent(vcenter: &PerfVCenter, mirror: bool) -> Agent {
        Agent::with_options(
            &vcenter.host(),
            "root",
            "pw",
            AgentOptions {
                verification: Verification::Insecure,
                mirror,
                ..AgentOptions::default()
            },
        )
        .unwrap()
    }

    /// The real-time `cpu.usagemhz.megaHertz.average` of `vm-{vm}`.
    fn cpu(vm: usize, max_sample: i64) -> String {
        json!({
            "method": "vm.perf.metric.get",
            "name": format!("vm-{vm}"),
            "counter-name": "cpu.usagemhz.megaHertz.average",
            "max-sample": max_sample,
        })
        .to_string()
    }

    /// Runs `msg` on every agent and checks that they answer the same bytes,
    /// a success; returns the answer.
    fn same_answer(agents: &[&Agent], msg: &str) -> String {
        let first = agents[0].run(msg);
        assert!(first.contains(r#""success": 0"#), "{msg}: {first}");
        for other in &agents[1..] {
            assert_eq!(other.run(msg), first, "{msg}");
        }
        first
    }

    /// The `QueryPerf` calls with their query specs since `seen` calls.
    fn new_queries(vcenter: &PerfVCenter, seen: &mut usize) -> Vec<usize> {
        let all = vcenter.perf_queries();
        let new = all[*seen..].to_vec();
        *seen = all.len();
        new
    }

    #[test]
    fn sweeps_cost_one_query_per_chunk_and_period() {
        const VMS: usize = 300;
        let vcenter = PerfVCenter::start(VMS);
        let cached = agent(&vcenter, true);
        let mut seen = 0;
        // First sweep: every metric is new, answered directly.
        for vm in 1..=VMS {
            cached.run(&cpu(vm, 1));
        }
        assert_eq!(new_queries(&vcenter, &mut seen), vec![1; VMS]);
        assert_eq!(vcenter.count("QueryPerfProviderSummary"), VMS);
        // Within the period: all from memory.
        for vm in 1..=VMS {
            cached.run(&cpu(vm, 1));
        }
        assert_eq!(new_queries(&vcenter, &mut seen), Vec::<usize>::new());
        // After it: each chunk (256 entities at most) is refreshed once.
        cached.perf.realtime.advance(PERIOD);
        let direct = agent(&vcenter, false);
        for vm in 1..=VMS {
            same_answer(&[&cached, &direct], &cpu(vm, 1));
        }
        let refreshes = new_queries(&vcenter, &mut seen);
        assert_eq!(refreshes.len(), VMS + 2, "{refreshes:?}");
        let batched: Vec<usize> = refreshes.into_iter().filter(|specs| *specs > 1).collect();
        assert_eq!(batched, [256, VMS - 256]);
        // The provider summaries were read once.
        assert_eq!(vcenter.count("QueryPerfProviderSummary"), 2 * VMS);
    }

    #[test]
    fn a_metric_registered_later_joins_the_next_refresh() {
        let vcenter = PerfVCenter::start(3);
        let (cached, direct) = (agent(&vcenter, true), agent(&vcenter, false));
        let mut seen = 0;
        same_answer(&[&cached, &direct], &cpu(1, 2));
        same_answer(&[&cached, &direct], &cpu(2, 2));
        let memory = json!({"method": "vm.perf.metric.get", "name": "vm-1",
            "counter-name": "mem.usage.percent.average", "instance": "0"})
        .to_string();
        same_answer(&[&cached, &direct], &memory);
        assert_eq!(new_queries(&vcenter, &mut seen), [1; 6]);
        cached.perf.realtime.advance(PERIOD);
        // vm-1's request refreshes: vm-1 with both its metrics, and vm-2.
        same_answer(&[&cached, &direct], &cpu(1, 2));
        assert_eq!(new_queries(&vcenter, &mut seen), [2, 1]);
        let bodies = vcenter.perf_bodies();
        let refresh = &bodies[bodies.len() - 2];
        assert!(
            refresh
                .contains("<metricId><counterId>24</counterId><instance>0</instance></metricId>"),
            "{refresh}"
        );
        assert!(refresh.contains(">vm-2</entity>"), "{refresh}");
        // The others come from it.
        same_answer(&[&cached, &direct], &cpu(2, 1));
        same_answer(&[&cached, &direct], &memory);
        assert_eq!(new_queries(&vcenter, &mut seen), [1, 1]);
    }

    #[test]
    fn more_samples_than_fetched_are_asked_for_and_then_kept() {
        let vcenter = PerfVCenter::start(1);
        let (cached, direct) = (agent(&vcenter, true), agent(&vcenter, false));
        let mut seen = 0;
        same_answer(&[&cached, &direct], &cpu(1, 1));
        // More than the cache holds: directly; then kept.
        same_answer(&[&cached, &direct], &cpu(1, 4));
        same_answer(&[&cached, &direct], &cpu(1, 3));
        assert_eq!(new_queries(&vcenter, &mut seen), [1; 5]);
        cached.perf.realtime.advance(PERIOD);
        same_answer(&[&cached, &direct], &cpu(1, 1));
        let bodies = vcenter.perf_bodies();
        assert!(bodies[bodies.len() - 2].contains("<maxSample>4</maxSample>"));
        same_answer(&[&cached, &direct], &cpu(1, 4));
        assert_eq!(new_queries(&vcenter, &mut seen), [1, 1, 1]);
        // Beyond what the cache keeps: always directly.
        for _ in 0..2 {
            same_answer(&[&cached], &cpu(1, realtime::MOST_SAMPLES + 1));
        }
        assert_eq!(new_queries(&vcenter, &mut seen), [1, 1]);
    }

    #[test]
    fn a_failed_refresh_serves_no_old_samples() {
        let vcenter = PerfVCenter::start(2);
        let (cached, direct) = (agent(&vcenter, true), agent(&vcenter, false));
        let mut seen = 0;
        same_answer(&[&cached, &direct], &cpu(1, 1));
        same_answer(&[&cached, &direct], &cpu(2, 1));
        cached.perf.realtime.advance(PERIOD);
        vcenter.fail_perf(true);
        // The refresh fails, then the direct query, as without the cache.
        let failed = cached.run(&cpu(1, 1));
        assert_eq!(failed, direct.run(&cpu(1, 1)));
        assert!(
            failed.contains("the performance manager is down"),
            "{failed}"
        );
        assert_eq!(new_queries(&vcenter, &mut seen)[4..], [2, 1, 1]);
        // vm-2 left with the chunk: asked directly too.
        assert_eq!(cached.run(&cpu(2, 1)), failed.replace("vm-1", "vm-2"));
        assert_eq!(new_queries(&vcenter, &mut seen), [1]);
        // Back: direct answers register the metrics again.
        vcenter.fail_perf(false);
        same_answer(&[&cached, &direct], &cpu(1, 1));
        same_answer(&[&cached], &cpu(1, 1));
        assert_eq!(new_queries(&vcenter, &mut seen), [1, 1]);
    }

    #[test]
    fn historical_intervals_and_every_instance_stay_live() {
        let vcenter = PerfVCenter::start(1);
        let (cached, direct) = (agent(&vcenter, true), agent(&vcenter, false));
        let mut seen = 0;
        let past_day = json!({"method": "vm.perf.metric.get", "name": "vm-1",
            "counter-name": "cpu.usagemhz.megaHertz.average", "perf-interval": "Past day", "max-sample": 2})
        .to_string();
        let every = json!({"method": "vm.perf.metric.get", "name": "vm-1",
            "counter-name": "cpu.usagemhz.megaHertz.average", "instance": "*"})
        .to_string();
        for _ in 0..2 {
            let answer = same_answer(&[&cached, &direct], &past_day);
            assert!(answer.contains(r#""interval": 300"#), "{answer}");
            same_answer(&[&cached, &direct], &every);
        }
        assert_eq!(new_queries(&vcenter, &mut seen), [1; 8]);
    }

    #[test]
    fn without_the_mirror_every_request_asks() {
        let vcenter = PerfVCenter::start(2);
        let direct = agent(&vcenter, false);
        for _ in 0..3 {
            direct.run(&cpu(1, 1));
        }
        assert_eq!(vcenter.count("QueryPerf"), 3);
        // The summary for the lookup TTL, as the tables.
        assert_eq!(vcenter.count("QueryPerfProviderSummary"), 1);
        direct.perf.realtime.advance(PERIOD * 10);
        direct.run(&cpu(1, 1));
        assert_eq!(vcenter.count("QueryPerf"), 4);
        assert!(direct.perf.realtime.registry().is_empty());
    }

    #[test]
    fn requests_that_come_during_a_refresh_share_it() {
        let vcenter = PerfVCenter::start(8);
        let cached = Arc::new(agent(&vcenter, true));
        let direct = agent(&vcenter, false);
        for vm in 1..=8 {
            cached.run(&cpu(vm, 1));
        }
        cached.perf.realtime.advance(PERIOD);
        let before = vcenter.count("QueryPerf");
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let cached = cached.clone();
                std::thread::spawn(move || {
                    (1..=8)
                        .map(|step| cached.run(&cpu((thread + step) % 8 + 1, 1)))
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        for (thread, answers) in threads.into_iter().enumerate() {
            for (step, answer) in answers.join().unwrap().into_iter().enumerate() {
                assert_eq!(answer, direct.run(&cpu((thread + step + 1) % 8 + 1, 1)));
            }
        }
        // One refresh for the 64 requests (and the 64 direct ones).
        assert_eq!(vcenter.count("QueryPerf") - before, 1 + 64);
    }

    #[test]
    fn small_chunks_split_the_refresh() {
        let vcenter = PerfVCenter::start(5);
        let cached = agent(&vcenter, true);
        cached.perf.realtime.set_limits(Limits {
            chunk_entities: 2,
            ..Limits::default()
        });
        let mut seen = 0;
        for vm in 1..=5 {
            cached.run(&cpu(vm, 1));
        }
        cached.perf.realtime.advance(PERIOD);
        for vm in 1..=5 {
            cached.run(&cpu(vm, 1));
        }
        assert_eq!(new_queries(&vcenter, &mut seen)[5..], [2, 2, 1]);
    }
}
