//! The newest real-time sample of many counters of many entities at once,
//! for callers that want a whole inventory's counters (the exporter's
//! performance metrics): one `QueryPerf` per chunk of [`CHUNK`] entities, every
//! counter of the chunk's entities in it, the chunks in parallel.
//!
//! Counters are named `group.name.rollup` (`cpu.usage.average`), as
//! vmware_exporter names them: the counter table's `group.name.unit.rollup`
//! without the unit. A name the host's table does not have is left out.

use super::samples::{write_query_spec, EntityMetric, MetricId};
use super::{call_manager, tables};
use crate::agent::Agent;
use crate::error::Error;
use crate::vsphere::soap::MoRef;
use std::collections::HashMap;
use std::time::Instant;

/// The real-time interval's id (and its period in seconds) on vCenter and
/// ESXi.
pub(crate) const REALTIME_INTERVAL: i64 = 20;
/// The most entities one `QueryPerf` asks for: 24,000 metrics of 24
/// counters, inside the 50,000 metrics per real-time query that Telegraf
/// uses against vCenter. One sample of 24 counters
/// is about 125 XML elements per entity, so a chunk's answer is about
/// 125,000, a quarter of vCenter's cap of 500,000 per response.
pub(crate) const CHUNK: usize = 1000;
/// The most `QueryPerf` calls under way at once for one sweep.
const PARALLEL: usize = 4;

/// What one sweep found: per entity, the newest sample of each counter
/// asked for (in the order asked; `None` where the host sent none), and
/// the first failure when some chunks failed (their entities are missing).
#[derive(Debug, Default)]
pub(crate) struct Latest {
    pub values: HashMap<MoRef, Vec<Option<f64>>>,
    pub failure: Option<Error>,
}

/// The newest real-time sample of each of `counters` of each of
/// `entities` (of any managed types), read in chunks of [`CHUNK`].
/// Fails as a whole only when the counter table cannot be read.
pub(crate) fn latest(
    agent: &Agent,
    entities: &[MoRef],
    counters: &[&str],
    deadline: Instant,
) -> Result<Latest, Error> {
    let connection = agent.connection()?;
    let tables = tables(agent, &connection, deadline)?;
    let mut by_short: HashMap<String, i64> = HashMap::new();
    for counter in &tables.counters {
        // `group.name.unit.rollup` without its unit (names may hold dots:
        // only the unit goes); the last of a name wins, as in
        // vmware_exporter's table.
        let Some((rest, rollup)) = counter.name.rsplit_once('.') else {
            continue;
        };
        let Some((group_and_name, _unit)) = rest.rsplit_once('.') else {
            continue;
        };
        by_short.insert(format!("{group_and_name}.{rollup}"), counter.key);
    }
    // The position of each counter key in the answer's vector.
    let mut position: HashMap<i64, usize> = HashMap::new();
    let mut metrics = Vec::new();
    for (index, name) in counters.iter().enumerate() {
        if let Some(key) = by_short.get(*name) {
            position.entry(*key).or_insert(index);
            metrics.push(MetricId {
                counter: *key,
                instance: String::new(),
            });
        }
    }
    let mut found = Latest::default();
    if metrics.is_empty() || entities.is_empty() {
        return Ok(found);
    }
    let chunks: Vec<&[MoRef]> = entities.chunks(CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(chunks.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = chunks.get(index) else {
                    break;
                };
                let mut args = String::new();
                for entity in chunk.iter() {
                    write_query_spec(&mut args, entity, 1, &metrics, REALTIME_INTERVAL);
                }
                let answer = call_manager(&connection, "QueryPerf", args, deadline)
                    .map(|nodes| nodes.iter().map(EntityMetric::read).collect::<Vec<_>>());
                if let Ok(mut results) = results.lock() {
                    results.push(answer);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    for answer in results {
        match answer {
            Ok(entities) => {
                for metric in entities {
                    let Some(entity) = metric.entity.clone() else {
                        continue;
                    };
                    let values = found
                        .values
                        .entry(entity)
                        .or_insert_with(|| vec![None; counters.len()]);
                    for (counter, sum) in metric.sums() {
                        if let Some(index) = position.get(&counter) {
                            values[*index] = Some(sum);
                        }
                    }
                }
            }
            Err(error) => {
                if found.failure.is_none() {
                    found.failure = Some(error);
                }
            }
        }
    }
    Ok(found)
}
