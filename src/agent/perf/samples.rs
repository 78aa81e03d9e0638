//! What `QueryPerf` is asked and what it answers, in one place for the
//! direct path and the real-time cache alike: the `PerfQuerySpec` both send
//! ([`write_query_spec`]), a `PerfEntityMetric` read once
//! ([`EntityMetric::read`]) and written as py-vpoller's samples
//! ([`EntityMetric::render`]). Since both paths render through the same
//! function, a cached answer is the same bytes as a direct one for the same
//! samples.

use crate::agent::python;
use crate::vsphere::soap::{element, MoRef};
use crate::vsphere::xml::Node;
use serde_json::{Map, Value};

/// One metric of an entity: a counter (by key) and an instance (`""` the
/// aggregate, `"*"` every instance).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MetricId {
    pub counter: i64,
    pub instance: String,
}

/// Appends one `<querySpec>` for `entity` with `metrics`, the newest
/// `max_sample` samples of interval `interval_id`.
pub(super) fn write_query_spec<'a>(
    out: &mut String,
    entity: &MoRef,
    max_sample: i64,
    metrics: impl IntoIterator<Item = &'a MetricId>,
    interval_id: i64,
) {
    out.push_str("<querySpec>");
    entity.write(out, "entity");
    element(out, "maxSample", &max_sample.to_string());
    for metric in metrics {
        out.push_str("<metricId>");
        element(out, "counterId", &metric.counter.to_string());
        element(out, "instance", &metric.instance);
        out.push_str("</metricId>");
    }
    element(out, "intervalId", &interval_id.to_string());
    out.push_str("</querySpec>");
}

/// One `PerfEntityMetric`, read into what the reply needs: the sample
/// positions oldest first (servers differ in their order) and each series'
/// value at each position.
#[derive(Debug, PartialEq)]
pub(crate) struct EntityMetric {
    /// The entity the samples are of, as the server named it.
    pub entity: Option<MoRef>,
    /// Each sample's interval and timestamp (as py-vpoller prints it),
    /// oldest first.
    infos: Vec<(Value, Value)>,
    series: Vec<Series>,
}

#[derive(Debug, PartialEq)]
struct Series {
    /// The series' `id`: `None` where the server sent no counter key.
    id: Option<MetricId>,
    /// The value at each of the entity's sample positions; `None` where
    /// the series is shorter than the sample list.
    values: Vec<Option<Value>>,
}

/// A sample's time (for ordering), its timestamp text and its interval.
type SampleInfo<'a> = (Option<(i64, u32)>, &'a str, Value);

impl EntityMetric {
    /// Reads a `PerfEntityMetric` element.
    pub fn read(metric: &Node) -> EntityMetric {
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
        let mut order: Vec<usize> = (0..infos.len()).collect();
        order.sort_by_key(|index| infos[*index].0);
        let series = metric
            .children
            .iter()
            .filter(|child| child.name == "value")
            .map(|series| {
                let id = series.child("id");
                let values: Vec<&Node> = series
                    .children
                    .iter()
                    .filter(|child| child.name == "value")
                    .collect();
                Series {
                    id: id
                        .and_then(|id| id.child_text("counterId"))
                        .and_then(|key| key.trim().parse::<i64>().ok())
                        .map(|counter| MetricId {
                            counter,
                            instance: id
                                .and_then(|id| id.child_text("instance"))
                                .unwrap_or("")
                                .to_owned(),
                        }),
                    values: order
                        .iter()
                        .map(|index| values.get(*index).map(|value| number(&value.text)))
                        .collect(),
                }
            })
            .collect();
        EntityMetric {
            entity: metric.child("entity").and_then(MoRef::from_node),
            infos: order
                .iter()
                .map(|index| {
                    let (_, timestamp, interval) = &infos[*index];
                    (interval.clone(), python::datetime(timestamp).into())
                })
                .collect(),
            series,
        }
    }

    /// Whether every series is `metric`'s: then rendering only `metric`
    /// gives what rendering everything gives.
    pub fn only_of(&self, metric: &MetricId) -> bool {
        self.series
            .iter()
            .all(|series| series.id.as_ref() == Some(metric))
    }

    /// Each aggregate series' counter key and the sum of its numeric
    /// values (with one sample asked for, the newest value).
    pub fn sums(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.series.iter().filter_map(|series| {
            let id = series.id.as_ref().filter(|id| id.instance.is_empty())?;
            let sum = series
                .values
                .iter()
                .flatten()
                .filter_map(Value::as_f64)
                .sum::<f64>();
            Some((id.counter, sum))
        })
    }

    /// Appends the newest `keep` samples of each series (of `only` that
    /// metric, when given), oldest first, as the reply lists them.
    pub fn render(
        &self,
        only: Option<&MetricId>,
        counter_name: &str,
        keep: i64,
        out: &mut Vec<Value>,
    ) {
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let newest = self.infos.len().saturating_sub(keep);
        for series in &self.series {
            if only.is_some_and(|metric| series.id.as_ref() != Some(metric)) {
                continue;
            }
            let instance = series
                .id
                .as_ref()
                .map(|id| id.instance.as_str())
                .unwrap_or("");
            for (position, value) in series.values.iter().enumerate().skip(newest) {
                let Some(value) = value else {
                    continue;
                };
                let (interval, timestamp) = &self.infos[position];
                let mut entry = Map::new();
                entry.insert("interval".into(), interval.clone());
                entry.insert("timestamp".into(), timestamp.clone());
                entry.insert("counterId".into(), counter_name.into());
                entry.insert("instance".into(), instance.into());
                entry.insert("value".into(), value.clone());
                out.push(Value::Object(entry));
            }
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
pub(crate) fn instant_of(text: &str) -> Option<(i64, u32)> {
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
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// A `PerfEntityMetric` as the server sends it, read.
    pub fn entity_metric(xml: &str) -> EntityMetric {
        let node = crate::vsphere::xml::parse_body(std::io::Cursor::new(format!(
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><R xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{xml}</R></Body></Envelope>"#
        )))
        .unwrap();
        EntityMetric::read(&node.children[0])
    }

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

    /// Newest first, as the simulator sends them; two metrics, as a
    /// batched query answers.
    const TWO_METRICS: &str = r#"<returnval xsi:type="PerfEntityMetric">
            <entity type="VirtualMachine">vm-1</entity>
            <sampleInfo><timestamp>2026-01-01T00:01:00Z</timestamp><interval>20</interval></sampleInfo>
            <sampleInfo><timestamp>2026-01-01T00:00:40Z</timestamp><interval>20</interval></sampleInfo>
            <sampleInfo><timestamp>2026-01-01T00:00:20Z</timestamp><interval>20</interval></sampleInfo>
            <value xsi:type="PerfMetricIntSeries"><id><counterId>6</counterId><instance>0</instance></id>
              <value>3</value><value>2</value><value>1</value></value>
            <value xsi:type="PerfMetricIntSeries"><id><counterId>7</counterId><instance></instance></id>
              <value>30</value><value>20</value></value>
        </returnval>"#;

    #[test]
    fn newest_samples_oldest_first() {
        let metric = entity_metric(TWO_METRICS);
        assert_eq!(metric.entity, Some(MoRef::new("VirtualMachine", "vm-1")));
        let six = MetricId {
            counter: 6,
            instance: "0".into(),
        };
        let mut out = Vec::new();
        metric.render(Some(&six), "cpu.usagemhz.megaHertz.average", 2, &mut out);
        assert_eq!(
            Value::Array(out),
            json!([
                {"interval": 20, "timestamp": "2026-01-01 00:00:40+00:00", "counterId": "cpu.usagemhz.megaHertz.average", "instance": "0", "value": 2},
                {"interval": 20, "timestamp": "2026-01-01 00:01:00+00:00", "counterId": "cpu.usagemhz.megaHertz.average", "instance": "0", "value": 3},
            ])
        );
        assert!(!metric.only_of(&six));
        // Everything: each series in turn; the shorter one has no value at
        // the oldest position, so it gives one sample fewer.
        let mut out = Vec::new();
        metric.render(None, "x", 3, &mut out);
        let values: Vec<&Value> = out.iter().map(|sample| &sample["value"]).collect();
        assert_eq!(
            values,
            [&json!(1), &json!(2), &json!(3), &json!(20), &json!(30)]
        );
        // More asked for than there are: all of them.
        let mut out = Vec::new();
        metric.render(Some(&six), "x", i64::from(i32::MAX), &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn query_specs_name_every_metric() {
        let mut out = String::new();
        let metrics = [
            MetricId {
                counter: 6,
                instance: String::new(),
            },
            MetricId {
                counter: 7,
                instance: "a<b".into(),
            },
        ];
        write_query_spec(
            &mut out,
            &MoRef::new("HostSystem", "host-1"),
            3,
            &metrics,
            20,
        );
        assert_eq!(
            out,
            "<querySpec><entity type=\"HostSystem\">host-1</entity><maxSample>3</maxSample>\
             <metricId><counterId>6</counterId><instance></instance></metricId>\
             <metricId><counterId>7</counterId><instance>a&lt;b</instance></metricId>\
             <intervalId>20</intervalId></querySpec>"
        );
    }
}
