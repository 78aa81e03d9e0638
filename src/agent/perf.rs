//! The performance tasks: the counter and historical interval tables
//! (`perf.metric.info`, `perf.interval.info`), the metrics an object offers
//! (`<kind>.perf.metric.info`) and its samples (`<kind>.perf.metric.get`).
//!
//! Samples come back oldest first, and they are the newest `max-sample` ones:
//! vCenter ignores `maxSample` for historical intervals and answers with the
//! whole interval, so the agent keeps the newest samples itself.

use crate::agent::inventory::{self, MISSING, MISSING_COLON};
use crate::agent::python;
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
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
#[derive(Clone, Copy)]
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
    summaries: Mutex<HashMap<MoRef, Summary>>,
    /// When they were read (the agent drops them when its connection changes).
    read_at: Instant,
}

impl Tables {
    fn counter_named(&self, name: &str) -> Option<&Counter> {
        self.by_name.get(name).map(|index| &self.counters[*index])
    }

    fn counter_name(&self, key: i64) -> String {
        self.by_key
            .get(&key)
            .map(|index| self.counters[*index].name.clone())
            .unwrap_or_else(|| key.to_string())
    }
}

/// The agent's slot for the tables.
#[derive(Default)]
pub(crate) struct TableCache {
    slot: Mutex<Option<Arc<Tables>>>,
}

impl TableCache {
    pub fn clear(&self) {
        *self.slot.locked() = None;
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
    let content = crate::vsphere::property::object_properties(
        connection,
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

fn read_tables(content: Option<&ObjectContent>) -> Tables {
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
        summaries: Mutex::new(HashMap::new()),
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

fn summary(
    tables: &Tables,
    connection: &Connection,
    entity: &MoRef,
    deadline: Instant,
) -> Result<Summary, Error> {
    if let Some(summary) = tables.summaries.locked().get(entity) {
        return Ok(*summary);
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
    tables.summaries.locked().insert(entity.clone(), summary);
    Ok(summary)
}

/// The message's `counter-name`, when set.
fn counter_name(msg: &Msg<'_>) -> Option<String> {
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
    let summary = summary(&tables, &connection, &content.obj, msg.deadline)?;
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
fn max_sample(msg: &Msg<'_>) -> Option<i64> {
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
    let connection = agent.connection()?;
    let tables = tables(agent, &connection, msg.deadline)?;
    let summary = summary(&tables, &connection, &content.obj, msg.deadline)?;
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
    let mut args = String::from("<querySpec>");
    content.obj.write(&mut args, "entity");
    element(&mut args, "maxSample", &max_sample.to_string());
    args.push_str("<metricId>");
    element(&mut args, "counterId", &counter.key.to_string());
    element(&mut args, "instance", &instance);
    args.push_str("</metricId>");
    element(&mut args, "intervalId", &interval_id.to_string());
    args.push_str("</querySpec>");
    let returned = call_manager(&connection, "QueryPerf", args, msg.deadline)
        .map_err(|error| cannot_retrieve(entity_name, error))?;
    let mut result = Vec::new();
    for metric in &returned {
        samples(metric, &counter_name, max_sample, &mut result);
    }
    Ok(reply::success_msg_first(RETRIEVED, Value::Array(result)))
}

/// A sample's time (for ordering), its timestamp text and its interval.
type SampleInfo<'a> = (Option<(i64, u32)>, &'a str, Value);

/// Appends the newest `keep` samples of each series of one
/// `PerfEntityMetric`, oldest first.
fn samples(metric: &Node, counter_name: &str, keep: i64, out: &mut Vec<Value>) {
    let infos: Vec<SampleInfo<'_>> = metric
        .children
        .iter()
        .filter(|child| child.name == "sampleInfo")
        .map(|info| {
            let timestamp = info.child_text("timestamp").unwrap_or("");
            let interval = info
                .child_text("interval")
                .and_then(|text| text.trim().parse::<i64>().ok())
                .map(Value::from)
                .unwrap_or(Value::Null);
            (instant_of(timestamp), timestamp, interval)
        })
        .collect();
    // Sample positions, oldest first (servers differ in their order).
    let mut order: Vec<usize> = (0..infos.len()).collect();
    order.sort_by_key(|index| infos[*index].0);
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let newest = &order[order.len().saturating_sub(keep)..];
    for series in metric.children.iter().filter(|child| child.name == "value") {
        let instance = series
            .child("id")
            .and_then(|id| id.child_text("instance"))
            .unwrap_or("");
        let values: Vec<&Node> = series
            .children
            .iter()
            .filter(|child| child.name == "value")
            .collect();
        for index in newest {
            let Some(sample) = values.get(*index) else {
                continue;
            };
            let (_, timestamp, interval) = &infos[*index];
            let mut entry = Map::new();
            entry.insert("interval".into(), interval.clone());
            entry.insert("timestamp".into(), python::datetime(timestamp).into());
            entry.insert("counterId".into(), counter_name.into());
            entry.insert("instance".into(), instance.into());
            entry.insert("value".into(), number(&sample.text));
            out.push(Value::Object(entry));
        }
    }
}

fn number(text: &str) -> Value {
    let text = text.trim();
    text.parse::<i64>()
        .map(Value::from)
        .or_else(|_| text.parse::<f64>().map(Value::from))
        .unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// An ISO 8601 time (`2026-11-27T10:11:12.5+01:00`) as seconds since the
/// epoch and nanoseconds, for ordering samples; `None` for text that is not
/// such a time, fields out of range included (years 1 to 9999, as Python's
/// datetime has them), so that no sum can overflow.
fn instant_of(text: &str) -> Option<(i64, u32)> {
    let field = |text: &str, range: std::ops::RangeInclusive<i64>| {
        text.parse::<i64>()
            .ok()
            .filter(|value| range.contains(value))
    };
    let (date, rest) = text.trim().split_once('T')?;
    let mut parts = date.splitn(3, '-');
    let year = field(parts.next()?, 1..=9999)?;
    let month = field(parts.next()?, 1..=12)?;
    let day = field(parts.next()?, 1..=31)?;
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut fields = clock.splitn(3, ':');
    let hour = field(fields.next()?, 0..=24)?;
    let minute = field(fields.next()?, 0..=59)?;
    let second = field(fields.next().unwrap_or("0"), 0..=60)?;
    let mut nanos: String = fraction.chars().take(9).collect();
    while nanos.len() < 9 {
        nanos.push('0');
    }
    let nanos: u32 = nanos.parse().ok()?;
    let offset = match zone.chars().next() {
        Some(sign @ ('+' | '-')) => {
            // The sign is one byte: the rest starts after it.
            let (hours, minutes) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
            let seconds = field(hours, 0..=24)? * 3600 + field(minutes, 0..=59)? * 60;
            if sign == '+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => 0,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_order_across_zones() {
        assert_eq!(instant_of("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            instant_of("2026-11-27T10:11:12.5Z"),
            Some((1_795_774_272, 500_000_000))
        );
        assert_eq!(
            instant_of("2026-11-27T11:11:12.5+01:00"),
            instant_of("2026-11-27T10:11:12.5Z")
        );
        assert_eq!(
            instant_of("2000-03-01T00:00:00-00:30"),
            Some((951_868_800 + 1800, 0))
        );
        assert_eq!(instant_of("yesterday"), None);
        assert_eq!(
            instant_of("0001-01-01T00:00:00Z"),
            Some((-62_135_596_800, 0))
        );
        // Out of range: refused, not an overflowing sum.
        for text in [
            "99999999999999999-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T99999999999999999:00:00Z",
            "2026-01-01T00:00:00+99999999999999999:00",
            "2026-01-01T00:00:00.x",
        ] {
            assert_eq!(instant_of(text), None, "{text}");
        }
    }

    #[test]
    fn arbitrary_times_never_panic() {
        let valid = b"2026-11-27T11:11:12.123456789+01:00";
        for input in crate::vsphere::testing::mangled(valid, 5000, 0x7153) {
            let text = String::from_utf8_lossy(&input);
            let _ = instant_of(&text);
            let _ = python::datetime(&text);
        }
    }

    #[test]
    fn newest_samples_oldest_first() {
        // Newest first, as the simulator sends them.
        let xml = r#"<returnval xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="PerfEntityMetric">
            <entity type="VirtualMachine">vm-1</entity>
            <sampleInfo><timestamp>2026-01-01T00:01:00Z</timestamp><interval>20</interval></sampleInfo>
            <sampleInfo><timestamp>2026-01-01T00:00:40Z</timestamp><interval>20</interval></sampleInfo>
            <sampleInfo><timestamp>2026-01-01T00:00:20Z</timestamp><interval>20</interval></sampleInfo>
            <value xsi:type="PerfMetricIntSeries"><id><counterId>6</counterId><instance>0</instance></id>
              <value>3</value><value>2</value><value>1</value></value>
        </returnval>"#;
        let node = crate::vsphere::xml::parse_body(std::io::Cursor::new(format!(
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><R xmlns="urn:vim25">{xml}</R></Body></Envelope>"#
        )))
        .unwrap();
        let metric = &node.children[0];
        let mut out = Vec::new();
        samples(metric, "cpu.usagemhz.megaHertz.average", 2, &mut out);
        assert_eq!(
            Value::Array(out),
            json!([
                {"interval": 20, "timestamp": "2026-01-01 00:00:40+00:00", "counterId": "cpu.usagemhz.megaHertz.average", "instance": "0", "value": 2},
                {"interval": 20, "timestamp": "2026-01-01 00:01:00+00:00", "counterId": "cpu.usagemhz.megaHertz.average", "instance": "0", "value": 3},
            ])
        );
    }
}
