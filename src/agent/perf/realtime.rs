//! The real-time sample cache of one vSphere host: which (entity, counter,
//! instance) were asked for lately, their newest samples, and the batched
//! `QueryPerf` calls that refresh them.
//!
//! The [`Registry`] only decides; it performs no I/O and reads no clock.
//! The task (`perf::entity_metric_get`) asks it what to do next
//! ([`Registry::lookup`]), makes the call it is told to, reports back
//! ([`Registry::finish`], [`Registry::record_direct`]) and passes the time
//! in, so that tests drive it with made-up instants.
//!
//! # What a request gets
//! - The first request for a metric is answered directly (one `QueryPerf`,
//!   as without the cache); its answer registers the metric and is kept as
//!   its first samples.
//! - Later requests are answered from memory while the metric's samples
//!   were fetched less than one refresh period ago (the entity's
//!   `refreshRate`, 20 s on vCenter and ESXi) and hold at least as many
//!   samples as asked for. The newest `max-sample` of them are rendered by
//!   the same function as a direct answer, so the bytes are the same.
//! - A request whose samples are older than that refreshes its entity's
//!   chunk (see below), unless the chunk was tried within the period; then
//!   it is answered directly, as it is when the cache cannot help (more
//!   samples than the refresh fetches, a chunk that just failed).
//!
//! # Refreshing: lazily, one chunk at a time, single-flight
//! Registered entities are grouped into chunks; one `QueryPerf` (one
//! `querySpec` per entity with all its metrics, `maxSample` the largest
//! any of them asked for) refreshes a whole chunk. The request that finds
//! its samples old makes that call in its own thread; requests for the
//! chunk's entities that come meanwhile wait for it (to their deadline)
//! instead of asking vCenter themselves, and chunks of other entities are
//! refreshed by their own requests in parallel (the worker's threads share
//! a sweep's calls instead of one thread making them all in a row). So a
//! chunk costs at most one call per refresh period, and nothing while
//! nobody asks: vCenter is asked as often as the samples are wanted, not
//! on a timer (entities swept once a minute cost one call a minute per
//! chunk, not three).
//!
//! No thread of its own: the library starts none (it is loaded into
//! forking Zabbix agents), there is nothing to stop or to start again in
//! a forked child, and a refresh that a child inherits half-done (a marker
//! left by a thread that is not in the child) is told apart by the process
//! id that made it and ignored.
//!
//! # Chunks
//! A chunk holds at most [`CHUNK_ENTITIES`] entities (Telegraf's
//! `max_query_objects`; real-time queries are not bound by vCenter's
//! `maxQueryMetrics`, which applies to historical intervals) and an answer
//! of at most [`CHUNK_ELEMENTS`] XML elements by estimate: vCenter refuses
//! to send one SOAP response of more than 500,000 elements. Entities join
//! the first chunk with room; one that grows out of its chunk moves.
//!
//! # Failure and expiry
//! A refresh that fails (vCenter down, a fault, a timeout) drops its chunk,
//! samples and registrations: those requests are answered directly, which
//! fails as it does without the cache while vCenter is down and registers
//! them again once it answers. So no sample older than one refresh period
//! is served, except to the requests that waited for the very refresh that
//! fetched it. Metrics nobody asked for within the idle time (the agent's
//! `mirror_idle_s`, at least three refresh periods) leave: monitoring
//! systems poll every minute or every few (Zabbix's default is one), so a
//! few periods would drop metrics between two polls, while an idle metric
//! costs one `metricId` in its chunk's refreshes and nothing when no one
//! asks for anything in the chunk.

use super::samples::{write_query_spec, EntityMetric, MetricId};
use crate::sync::{self, Lock};
use crate::vsphere::soap::MoRef;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most entities one refreshing `QueryPerf` asks for.
pub(super) const CHUNK_ENTITIES: usize = 256;
/// The most XML elements one refresh's answer may hold by estimate: a fifth
/// of vCenter's cap on one response, leaving room for an estimate that
/// falls short.
pub(super) const CHUNK_ELEMENTS: usize = 100_000;
/// The most samples a cached metric keeps: one hour of 20 s samples, all
/// the real-time data vSphere keeps. Requests for more are answered directly.
pub(super) const MOST_SAMPLES: i64 = 180;
/// The most samples (registered metrics times the samples each asks for)
/// the cache of one host holds, some tens of megabytes; metrics beyond it
/// are answered directly every time.
pub(super) const MOST_VALUES: usize = 1_000_000;
/// How often metrics that went idle are looked for.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// The idle time is at least this many refresh periods.
const IDLE_PERIODS: u32 = 3;

/// The limits of one registry (tests make them small).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub chunk_entities: usize,
    pub chunk_elements: usize,
    pub values: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            chunk_entities: CHUNK_ENTITIES,
            chunk_elements: CHUNK_ELEMENTS,
            values: MOST_VALUES,
        }
    }
}

/// One request for real-time samples.
pub(super) struct Query<'a> {
    pub entity: &'a MoRef,
    pub metric: &'a MetricId,
    pub max_sample: i64,
    /// The entity's `refreshRate` (seconds): its interval id and the period.
    pub refresh_rate: i64,
    /// How long a metric nobody asks for stays (before the period's floor).
    pub idle: Duration,
}

impl Query<'_> {
    /// Whether the cache may answer it: every instance (`*`) is left to
    /// vCenter, whose series (which, in what order) a batch could change.
    pub fn cacheable(&self) -> bool {
        self.refresh_rate > 0
            && (1..=MOST_SAMPLES).contains(&self.max_sample)
            && self.metric.instance != "*"
    }

    fn period(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.refresh_rate).unwrap_or(0))
    }

    fn idle(&self) -> Duration {
        self.idle.max(self.period() * IDLE_PERIODS)
    }
}

/// What a request does next.
#[derive(Debug)]
pub(super) enum Step {
    /// Answer with these samples (`None`: the server had none for the
    /// entity, as a direct query would have found).
    Answer(Option<Arc<EntityMetric>>),
    /// Refresh the entity's chunk (`QueryPerf` with [`Batch::args`]), report
    /// with [`Registry::finish`], then look up again with `after` set to
    /// [`Batch::started`].
    Refresh(Batch),
    /// Another request is refreshing the chunk, since this instant: wait
    /// until it is done, then look up again with `after` set to it.
    Wait(Instant),
    /// Query vCenter directly, and report the answer with
    /// [`Registry::record_direct`].
    Direct,
}

/// One refresh in progress: which chunk, since when, by which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flight {
    started: Instant,
    process: u32,
}

/// One refreshing `QueryPerf`: a `querySpec` per entity.
#[derive(Debug)]
pub(super) struct Batch {
    chunk: u64,
    flight: Flight,
    pub specs: Vec<Spec>,
}

/// One entity's part of a batch.
#[derive(Debug, PartialEq)]
pub(super) struct Spec {
    pub entity: MoRef,
    pub max_sample: i64,
    pub interval_id: i64,
    pub metrics: Vec<MetricId>,
}

impl Batch {
    /// The `QueryPerf` arguments.
    pub fn args(&self) -> String {
        let mut out = String::new();
        for spec in &self.specs {
            write_query_spec(
                &mut out,
                &spec.entity,
                spec.max_sample,
                &spec.metrics,
                spec.interval_id,
            );
        }
        out
    }

    /// When the refresh started: its samples count as fetched then.
    pub fn started(&self) -> Instant {
        self.flight.started
    }
}

/// Samples of one metric and when they were fetched.
#[derive(Debug)]
struct Cached {
    samples: Option<Arc<EntityMetric>>,
    fetched_at: Instant,
    /// How many samples the query that fetched them asked for.
    max_sample: i64,
}

#[derive(Debug)]
struct Metric {
    last_asked: Instant,
    /// The most samples asked for since it was registered.
    max_sample: i64,
    cached: Option<Cached>,
}

#[derive(Debug, Default)]
struct Entity {
    chunk: Option<u64>,
    interval_id: i64,
    /// The estimated elements of its part of a refresh's answer.
    cost: usize,
    metrics: HashMap<MetricId, Metric>,
}

impl Entity {
    fn max_sample(&self) -> i64 {
        self.metrics
            .values()
            .map(|metric| metric.max_sample)
            .max()
            .unwrap_or(1)
    }

    /// The XML elements of its `PerfEntityMetric` with S samples and M
    /// metrics: the entity, S sample infos of three, and per metric its
    /// series, id, counter, instance and S values.
    fn estimated_cost(&self) -> usize {
        let samples = usize::try_from(self.max_sample().min(MOST_SAMPLES)).unwrap_or(1);
        2 + 3 * samples + self.metrics.len() * (4 + samples)
    }
}

#[derive(Debug, Default)]
struct Chunk {
    members: Vec<MoRef>,
    cost: usize,
    /// When a refresh was last started.
    attempted: Option<Instant>,
    flight: Option<Flight>,
}

/// The cache's state for one host; see the module's documentation.
#[derive(Debug, Default)]
pub(super) struct Registry {
    entities: HashMap<MoRef, Entity>,
    chunks: BTreeMap<u64, Chunk>,
    next_chunk: u64,
    /// Samples registered: the sum of the metrics' `max_sample`.
    values: usize,
    purged_at: Option<Instant>,
    limits: Limits,
}

impl Registry {
    /// What to do for `query` at `now`. `after` is the start of the refresh
    /// this request made or waited for: samples it fetched are taken
    /// whatever their age, and no second refresh is started. `process` is
    /// the caller's process id.
    pub fn lookup(
        &mut self,
        query: &Query<'_>,
        now: Instant,
        after: Option<Instant>,
        process: u32,
    ) -> Step {
        let period = query.period();
        let Some(entity) = self.entities.get_mut(query.entity) else {
            return Step::Direct;
        };
        let Some(metric) = entity.metrics.get_mut(query.metric) else {
            return Step::Direct;
        };
        metric.last_asked = metric.last_asked.max(now);
        if let Some(cached) = &metric.cached {
            let fresh = now.saturating_duration_since(cached.fetched_at) < period
                || after.is_some_and(|started| cached.fetched_at >= started);
            if fresh && cached.max_sample >= query.max_sample {
                return Step::Answer(cached.samples.clone());
            }
        }
        if after.is_some() || query.max_sample > metric.max_sample {
            return Step::Direct;
        }
        let Some(chunk_id) = entity.chunk else {
            return Step::Direct;
        };
        let Some(chunk) = self.chunks.get_mut(&chunk_id) else {
            return Step::Direct;
        };
        match chunk.flight {
            Some(flight) if flight.process == process => return Step::Wait(flight.started),
            // Started by the parent of this forked process: never finishes here.
            Some(_) => chunk.flight = None,
            None => {}
        }
        if chunk
            .attempted
            .is_some_and(|at| now.saturating_duration_since(at) < period)
        {
            return Step::Direct;
        }
        self.purge_if_due(now, query.idle());
        Step::Refresh(self.start(chunk_id, now, process))
    }

    /// Marks chunk `id` as being refreshed and returns its batch.
    fn start(&mut self, id: u64, now: Instant, process: u32) -> Batch {
        let flight = Flight {
            started: now,
            process,
        };
        let chunk = self.chunks.entry(id).or_default();
        chunk.attempted = Some(now);
        chunk.flight = Some(flight);
        let specs = chunk
            .members
            .iter()
            .filter_map(|member| {
                let entity = self.entities.get(member)?;
                let mut metrics: Vec<MetricId> = entity.metrics.keys().cloned().collect();
                metrics.sort();
                Some(Spec {
                    entity: member.clone(),
                    max_sample: entity.max_sample(),
                    interval_id: entity.interval_id,
                    metrics,
                })
            })
            .collect();
        Batch {
            chunk: id,
            flight,
            specs,
        }
    }

    /// Whether the refresh of `entity`'s chunk that started at `started`
    /// (in `process`) is still going.
    pub fn refreshing(&self, entity: &MoRef, started: Instant, process: u32) -> bool {
        self.entities
            .get(entity)
            .and_then(|entity| self.chunks.get(&entity.chunk?))
            .and_then(|chunk| chunk.flight)
            == Some(Flight { started, process })
    }

    /// Takes in what a refresh fetched (`None`: it failed): the samples of
    /// each entity the server answered for (the others have none), or,
    /// after a failure, the chunk and its entities leave.
    pub fn finish(&mut self, batch: &Batch, fetched: Option<HashMap<MoRef, Arc<EntityMetric>>>) {
        let Some(chunk) = self.chunks.get_mut(&batch.chunk) else {
            return;
        };
        if chunk.flight != Some(batch.flight) {
            // Not this refresh's chunk any more (the cache was cleared).
            return;
        }
        chunk.flight = None;
        let Some(fetched) = fetched else {
            let members = std::mem::take(&mut chunk.members);
            self.chunks.remove(&batch.chunk);
            for member in members {
                self.leave(&member);
            }
            return;
        };
        let started = batch.flight.started;
        for spec in &batch.specs {
            let Some(entity) = self.entities.get_mut(&spec.entity) else {
                continue;
            };
            let samples = fetched.get(&spec.entity);
            for id in &spec.metrics {
                let Some(metric) = entity.metrics.get_mut(id) else {
                    continue;
                };
                // A direct answer that came meanwhile is newer.
                if metric
                    .cached
                    .as_ref()
                    .is_some_and(|cached| cached.fetched_at > started)
                {
                    continue;
                }
                metric.cached = Some(Cached {
                    samples: samples.cloned(),
                    fetched_at: started,
                    max_sample: spec.max_sample,
                });
            }
        }
        self.drop_if_empty(batch.chunk);
    }

    /// Takes in a direct answer to `query` asked at `asked_at`: registers
    /// the metric (while the cache has room) and keeps the samples.
    pub fn record_direct(
        &mut self,
        query: &Query<'_>,
        samples: Option<Arc<EntityMetric>>,
        asked_at: Instant,
    ) {
        if !query.cacheable() {
            return;
        }
        self.purge_if_due(asked_at, query.idle());
        let wanted = usize::try_from(query.max_sample).unwrap_or(usize::MAX);
        let known = self
            .entities
            .get(query.entity)
            .and_then(|entity| entity.metrics.get(query.metric))
            .map_or(0, |metric| usize::try_from(metric.max_sample).unwrap_or(0));
        let added = wanted.saturating_sub(known);
        if self.values.saturating_add(added) > self.limits.values {
            return;
        }
        self.values += added;
        let entity = self.entities.entry(query.entity.clone()).or_default();
        entity.interval_id = query.refresh_rate;
        let metric = entity
            .metrics
            .entry(query.metric.clone())
            .or_insert_with(|| Metric {
                last_asked: asked_at,
                max_sample: query.max_sample,
                cached: None,
            });
        metric.last_asked = metric.last_asked.max(asked_at);
        metric.max_sample = metric.max_sample.max(query.max_sample);
        if metric
            .cached
            .as_ref()
            .map_or(true, |cached| cached.fetched_at <= asked_at)
        {
            metric.cached = Some(Cached {
                samples,
                fetched_at: asked_at,
                max_sample: query.max_sample,
            });
        }
        self.place(query.entity);
    }

    /// Puts `reference` into a chunk with room for its cost: its own while
    /// it fits (or is alone there), else the first with room, else a new one.
    fn place(&mut self, reference: &MoRef) {
        let Some(entity) = self.entities.get_mut(reference) else {
            return;
        };
        let old_cost = entity.cost;
        let cost = entity.estimated_cost();
        entity.cost = cost;
        let current = entity.chunk;
        if let Some(chunk) = current.and_then(|id| self.chunks.get_mut(&id)) {
            let without = chunk.cost.saturating_sub(old_cost);
            if without + cost <= self.limits.chunk_elements || chunk.members.len() == 1 {
                chunk.cost = without + cost;
                return;
            }
            chunk.cost = without;
            chunk.members.retain(|member| member != reference);
        }
        if let Some(id) = current {
            self.drop_if_empty(id);
        }
        let limits = self.limits;
        let room = self.chunks.iter().find_map(|(id, chunk)| {
            (chunk.members.len() < limits.chunk_entities
                && chunk.cost + cost <= limits.chunk_elements)
                .then_some(*id)
        });
        let id = room.unwrap_or_else(|| {
            self.next_chunk += 1;
            self.next_chunk
        });
        let chunk = self.chunks.entry(id).or_default();
        chunk.members.push(reference.clone());
        chunk.cost += cost;
        if let Some(entity) = self.entities.get_mut(reference) {
            entity.chunk = Some(id);
        }
    }

    /// Removes `reference` and its metrics.
    fn leave(&mut self, reference: &MoRef) {
        let Some(entity) = self.entities.remove(reference) else {
            return;
        };
        let samples: i64 = entity
            .metrics
            .values()
            .map(|metric| metric.max_sample)
            .sum();
        self.values = self
            .values
            .saturating_sub(usize::try_from(samples).unwrap_or(0));
        let Some(id) = entity.chunk else {
            return;
        };
        if let Some(chunk) = self.chunks.get_mut(&id) {
            chunk.members.retain(|member| member != reference);
            chunk.cost = chunk.cost.saturating_sub(entity.cost);
        }
        self.drop_if_empty(id);
    }

    fn drop_if_empty(&mut self, id: u64) {
        if self
            .chunks
            .get(&id)
            .is_some_and(|chunk| chunk.members.is_empty() && chunk.flight.is_none())
        {
            self.chunks.remove(&id);
        }
    }

    /// Once every [`PURGE_EVERY`]: metrics not asked for within `idle`
    /// leave, and entities with none left.
    fn purge_if_due(&mut self, now: Instant, idle: Duration) {
        if self
            .purged_at
            .is_some_and(|at| now.saturating_duration_since(at) < PURGE_EVERY)
        {
            return;
        }
        self.purged_at = Some(now);
        let mut idle_entities = Vec::new();
        let mut shrunk = Vec::new();
        let mut released = 0i64;
        for (reference, entity) in &mut self.entities {
            let before = entity.metrics.len();
            entity.metrics.retain(|_, metric| {
                let keep = now.saturating_duration_since(metric.last_asked) <= idle;
                if !keep {
                    released += metric.max_sample;
                }
                keep
            });
            if entity.metrics.is_empty() {
                idle_entities.push(reference.clone());
            } else if entity.metrics.len() != before {
                shrunk.push(reference.clone());
            }
        }
        self.values = self
            .values
            .saturating_sub(usize::try_from(released).unwrap_or(0));
        for reference in idle_entities {
            self.leave(&reference);
        }
        for reference in shrunk {
            self.place(&reference);
        }
    }
}

/// A [`Registry`] shared by the requests of one agent, with the signal
/// that a refresh finished.
#[derive(Default)]
pub(super) struct Realtime {
    registry: Mutex<Registry>,
    finished: Condvar,
    /// How far the tests moved the clock on.
    #[cfg(test)]
    skew: Mutex<Duration>,
}

impl Realtime {
    /// The time as the registry sees it.
    pub fn now(&self) -> Instant {
        let now = Instant::now();
        #[cfg(test)]
        let now = now + *self.skew.locked();
        now
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.locked()
    }

    /// Waits until the refresh of `entity`'s chunk that started at
    /// `started` is done, or `deadline` passes.
    pub fn wait(&self, entity: &MoRef, started: Instant, process: u32, deadline: Instant) {
        let mut registry = self.registry.locked();
        while registry.refreshing(entity, started, process) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            registry = sync::wait(&self.finished, registry, Some(left));
        }
    }

    /// [`Registry::finish`], and wakes the requests waiting for a refresh.
    pub fn finish(&self, batch: &Batch, fetched: Option<HashMap<MoRef, Arc<EntityMetric>>>) {
        self.registry.locked().finish(batch, fetched);
        self.finished.notify_all();
    }

    /// Forgets everything (the agent's connection changed).
    pub fn clear(&self) {
        let mut registry = self.registry.locked();
        let limits = registry.limits;
        let next_chunk = registry.next_chunk;
        *registry = Registry {
            limits,
            // Chunk ids are never used again, so a refresh still in flight
            // reports to no chunk of the new registry.
            next_chunk,
            ..Registry::default()
        };
        drop(registry);
        self.finished.notify_all();
    }

    /// Moves the registry's clock on by `by`.
    #[cfg(test)]
    pub fn advance(&self, by: Duration) {
        *self.skew.locked() += by;
    }

    #[cfg(test)]
    pub fn set_limits(&self, limits: Limits) {
        self.registry.locked().limits = limits;
    }
}

#[cfg(test)]
impl Registry {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.chunks.is_empty() && self.values == 0
    }

    /// The entities of each chunk, by id.
    fn chunk_members(&self) -> Vec<Vec<String>> {
        self.chunks
            .values()
            .map(|chunk| {
                chunk
                    .members
                    .iter()
                    .map(|member| member.id.clone())
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::tests::entity_metric;
    use super::*;

    const PERIOD: Duration = Duration::from_secs(20);
    const PROCESS: u32 = 100;
    const CPU: i64 = 6;

    fn vm(number: usize) -> MoRef {
        MoRef::new("VirtualMachine", &format!("vm-{number}"))
    }

    fn metric(counter: i64) -> MetricId {
        MetricId {
            counter,
            instance: String::new(),
        }
    }

    fn query<'a>(entity: &'a MoRef, metric: &'a MetricId, max_sample: i64) -> Query<'a> {
        Query {
            entity,
            metric,
            max_sample,
            refresh_rate: 20,
            idle: Duration::from_secs(900),
        }
    }

    /// The samples a server sends for `entity`.
    fn samples(entity: &MoRef) -> Arc<EntityMetric> {
        Arc::new(entity_metric(&format!(
            r#"<returnval><entity type="{}">{}</entity>
               <sampleInfo><timestamp>2026-01-01T00:00:20Z</timestamp><interval>20</interval></sampleInfo>
               <value><id><counterId>6</counterId><instance></instance></id><value>7</value></value></returnval>"#,
            entity.kind, entity.id
        )))
    }

    /// A registry with `metric` of `count` VMs answered directly at `at`.
    fn registered(limits: Limits, count: usize, metric: &MetricId, at: Instant) -> Registry {
        let mut registry = Registry {
            limits,
            ..Registry::default()
        };
        for number in 1..=count {
            let entity = vm(number);
            registry.record_direct(&query(&entity, metric, 1), Some(samples(&entity)), at);
        }
        registry
    }

    /// What the registry says to a request of this process.
    fn ask(
        registry: &mut Registry,
        entity: &MoRef,
        metric: &MetricId,
        max_sample: i64,
        now: Instant,
        after: Option<Instant>,
    ) -> Step {
        registry.lookup(&query(entity, metric, max_sample), now, after, PROCESS)
    }

    /// `count` VMs' CPU answered directly a period ago, and the refresh
    /// that vm-1's request starts now: the registry, now and the batch.
    fn refreshing_after_a_period(limits: Limits, count: usize) -> (Registry, Instant, Batch) {
        let start = Instant::now();
        let mut registry = registered(limits, count, &metric(CPU), start);
        let now = start + PERIOD;
        let batch = refresh(ask(&mut registry, &vm(1), &metric(CPU), 1, now, None));
        (registry, now, batch)
    }

    fn refresh(step: Step) -> Batch {
        match step {
            Step::Refresh(batch) => batch,
            other => panic!("not a refresh: {other:?}"),
        }
    }

    /// Every sample each spec's entity asked for, as a server answers.
    fn answer(batch: &Batch) -> HashMap<MoRef, Arc<EntityMetric>> {
        batch
            .specs
            .iter()
            .map(|spec| (spec.entity.clone(), samples(&spec.entity)))
            .collect()
    }

    #[test]
    fn direct_answers_serve_for_a_period_then_one_refresh_per_chunk() {
        let start = Instant::now();
        let cpu = metric(CPU);
        let mut registry = registered(Limits::default(), 300, &cpu, start);
        assert_eq!(
            registry
                .chunk_members()
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [256, 44]
        );
        let first = vm(1);
        let asked = query(&first, &cpu, 1);
        let within = start + PERIOD - Duration::from_millis(1);
        assert!(matches!(
            registry.lookup(&asked, within, None, PROCESS),
            Step::Answer(Some(_))
        ));
        let later = start + PERIOD;
        let batch = refresh(registry.lookup(&asked, later, None, PROCESS));
        assert_eq!(batch.specs.len(), 256);
        assert_eq!(
            batch.specs[1],
            Spec {
                entity: vm(2),
                max_sample: 1,
                interval_id: 20,
                metrics: vec![cpu.clone()],
            }
        );
        assert!(batch.args().starts_with(
            "<querySpec><entity type=\"VirtualMachine\">vm-1</entity><maxSample>1</maxSample>"
        ));
        // Meanwhile: the chunk's requests wait, the other chunk's refresh.
        let second = vm(2);
        assert!(matches!(
            ask(&mut registry, &second, &cpu, 1, later, None),
            Step::Wait(at) if at == later
        ));
        assert!(registry.refreshing(&second, later, PROCESS));
        let last = vm(300);
        let other = refresh(ask(&mut registry, &last, &cpu, 1, later, None));
        assert_eq!(other.specs.len(), 44);
        registry.finish(&batch, Some(answer(&batch)));
        assert!(!registry.refreshing(&second, later, PROCESS));
        // Whatever the refresh's length, those that waited take its samples.
        let long_after = later + PERIOD * 2;
        assert!(matches!(
            ask(&mut registry, &second, &cpu, 1, long_after, Some(later)),
            Step::Answer(Some(_))
        ));
        // Tried within the period, still in flight: the others wait.
        assert!(matches!(
            ask(&mut registry, &last, &cpu, 1, later, None),
            Step::Wait(_)
        ));
    }

    #[test]
    fn a_failed_refresh_drops_its_chunk() {
        let limits = Limits {
            chunk_entities: 2,
            ..Limits::default()
        };
        let (mut registry, later, batch) = refreshing_after_a_period(limits, 3);
        let (cpu, first) = (metric(CPU), vm(1));
        registry.finish(&batch, None);
        assert_eq!(registry.chunk_members(), [["vm-3"]]);
        for number in [1, 2] {
            let entity = vm(number);
            assert!(matches!(
                ask(&mut registry, &entity, &cpu, 1, later, Some(later)),
                Step::Direct
            ));
        }
        assert_eq!(registry.values, 1);
        // The answers that come directly register them again.
        registry.record_direct(&query(&first, &cpu, 1), None, later);
        assert!(matches!(
            ask(&mut registry, &first, &cpu, 1, later, None),
            Step::Answer(None)
        ));
    }

    #[test]
    fn a_chunk_tried_within_the_period_is_not_tried_again() {
        let (mut registry, later, batch) = refreshing_after_a_period(Limits::default(), 1);
        let cpu = metric(CPU);
        // vm-2 joins the chunk while the refresh is out, with samples older
        // than the period (a slow direct answer).
        let second = vm(2);
        registry.record_direct(&query(&second, &cpu, 1), None, later - PERIOD);
        registry.finish(&batch, Some(answer(&batch)));
        // Its samples are old, the chunk was tried a second ago: directly.
        let soon = later + Duration::from_secs(1);
        assert!(matches!(
            ask(&mut registry, &second, &cpu, 1, soon, None),
            Step::Direct
        ));
        // A period after that attempt: refreshed, vm-2 with the chunk.
        let next = refresh(ask(&mut registry, &second, &cpu, 1, later + PERIOD, None));
        assert_eq!(next.specs.len(), 2);
    }

    #[test]
    fn samples_fetched_before_a_direct_answer_do_not_replace_it() {
        let (mut registry, later, batch) = refreshing_after_a_period(Limits::default(), 1);
        let (cpu, first) = (metric(CPU), vm(1));
        // A request for more samples went directly meanwhile.
        let newer = later + Duration::from_secs(1);
        registry.record_direct(&query(&first, &cpu, 3), None, newer);
        registry.finish(&batch, Some(answer(&batch)));
        assert!(matches!(
            ask(&mut registry, &first, &cpu, 3, newer, None),
            Step::Answer(None)
        ));
        // The next refresh asks for three.
        let next = refresh(ask(&mut registry, &first, &cpu, 3, newer + PERIOD, None));
        assert_eq!(next.specs[0].max_sample, 3);
    }

    #[test]
    fn chunks_hold_a_bounded_answer() {
        let start = Instant::now();
        // One metric with one sample: 10 elements; two metrics with 10: 60.
        let limits = Limits {
            chunk_elements: 100,
            ..Limits::default()
        };
        let cpu = metric(CPU);
        let mut registry = registered(limits, 10, &cpu, start);
        assert_eq!(
            registry.chunk_members(),
            [(1..=10).map(|n| format!("vm-{n}")).collect::<Vec<_>>()]
        );
        // vm-1 grows out of its chunk and moves into a new one.
        let first = vm(1);
        let memory = metric(24);
        registry.record_direct(&query(&first, &memory, 10), None, start);
        let members = registry.chunk_members();
        assert_eq!(members.len(), 2);
        assert_eq!(members[1], ["vm-1"]);
        assert_eq!(
            registry
                .chunks
                .values()
                .map(|chunk| chunk.cost)
                .collect::<Vec<_>>(),
            [90, 60]
        );
        // Alone, an entity stays in its chunk whatever its size.
        registry.record_direct(&query(&first, &memory, 180), None, start);
        assert_eq!(registry.chunk_members().len(), 2);
        // New entities fill the room left.
        let eleventh = vm(11);
        registry.record_direct(&query(&eleventh, &cpu, 1), None, start);
        assert_eq!(registry.chunk_members()[0].len(), 10);
    }

    #[test]
    fn idle_metrics_leave() {
        let start = Instant::now();
        let cpu = metric(CPU);
        let memory = metric(24);
        let mut registry = registered(Limits::default(), 2, &cpu, start);
        let first = vm(1);
        registry.record_direct(&query(&first, &memory, 5), None, start);
        assert_eq!(registry.values, 7);
        // vm-1's memory is asked for all along, the rest is not.
        let mut now = start;
        for _ in 0..10 {
            now += Duration::from_secs(100);
            if let Step::Refresh(batch) = ask(&mut registry, &first, &memory, 5, now, None) {
                registry.finish(&batch, Some(answer(&batch)));
            }
        }
        let batch = refresh(ask(&mut registry, &first, &memory, 5, now + PERIOD, None));
        assert_eq!(batch.specs.len(), 1);
        assert_eq!(batch.specs[0].metrics, std::slice::from_ref(&memory));
        assert_eq!(registry.values, 5);
        assert_eq!(registry.chunk_members(), [["vm-1"]]);
        // The idle time is at least three periods.
        let short = Query {
            idle: Duration::ZERO,
            ..query(&first, &memory, 5)
        };
        assert_eq!(short.idle(), PERIOD * 3);
    }

    #[test]
    fn a_forked_child_ignores_its_parents_refresh() {
        let (mut registry, later, parents) = refreshing_after_a_period(Limits::default(), 1);
        let (cpu, first) = (metric(CPU), vm(1));
        // The child's attempt comes a period after the parent's.
        let child = PROCESS + 1;
        let childs = refresh(registry.lookup(&query(&first, &cpu, 1), later + PERIOD, None, child));
        assert!(!registry.refreshing(&first, parents.started(), PROCESS));
        // The parent's report (in the child's memory, should it come) is not taken.
        registry.finish(&parents, None);
        assert!(registry.refreshing(&first, childs.started(), child));
        registry.finish(&childs, Some(answer(&childs)));
        assert!(matches!(
            registry.lookup(&query(&first, &cpu, 1), later + PERIOD, None, child),
            Step::Answer(Some(_))
        ));
    }

    #[test]
    fn what_the_cache_does_not_take() {
        let start = Instant::now();
        let cpu = metric(CPU);
        let every = MetricId {
            counter: 6,
            instance: "*".into(),
        };
        let first = vm(1);
        assert!(!query(&first, &every, 1).cacheable());
        assert!(!query(&first, &cpu, MOST_SAMPLES + 1).cacheable());
        assert!(query(&first, &cpu, MOST_SAMPLES).cacheable());
        let no_rate = Query {
            refresh_rate: -1,
            ..query(&first, &cpu, 1)
        };
        assert!(!no_rate.cacheable());
        let mut registry = Registry {
            limits: Limits {
                values: 4,
                ..Limits::default()
            },
            ..Registry::default()
        };
        registry.record_direct(&query(&first, &every, 1), None, start);
        assert!(registry.is_empty());
        // Room for four samples: a fifth is not registered, nor raised to.
        registry.record_direct(&query(&first, &cpu, 4), None, start);
        let second = vm(2);
        registry.record_direct(&query(&second, &cpu, 1), None, start);
        registry.record_direct(&query(&first, &cpu, 5), None, start);
        assert_eq!(registry.values, 4);
        assert_eq!(registry.chunk_members(), [["vm-1"]]);
        assert!(matches!(
            ask(&mut registry, &second, &cpu, 1, start, None),
            Step::Direct
        ));
    }

    #[test]
    fn a_cleared_cache_takes_no_report_of_a_refresh_before() {
        let realtime = Realtime::default();
        let start = realtime.now();
        let cpu = metric(CPU);
        let first = vm(1);
        realtime
            .registry()
            .record_direct(&query(&first, &cpu, 1), None, start);
        let batch = refresh(realtime.registry().lookup(
            &query(&first, &cpu, 1),
            start + PERIOD,
            None,
            PROCESS,
        ));
        realtime.clear();
        realtime
            .registry()
            .record_direct(&query(&first, &cpu, 1), None, start);
        realtime.finish(&batch, Some(answer(&batch)));
        assert!(matches!(
            realtime
                .registry()
                .lookup(&query(&first, &cpu, 1), start + PERIOD, None, PROCESS),
            Step::Refresh(_)
        ));
        // Waiting for a refresh that is not going returns at once.
        realtime.wait(
            &first,
            start,
            PROCESS,
            Instant::now() + Duration::from_secs(600),
        );
    }
}
