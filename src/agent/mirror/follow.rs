//! The follower: one thread per mirrored host that owns the private
//! property collector, keeps one filter per managed type with the paths
//! asked for, and applies what `WaitForUpdatesEx` reports. Everything that
//! talks to vCenter for the mirror happens here, one call at a time, so
//! the order of reads and updates is the order they were made in.

use super::store::{self, KindStore};
use super::{key_property, Inner, State, Status};
use crate::error::{Error, VSphereKind};
use crate::sync::{Lock, Shared as _};
use crate::vsphere::property::{self, ObjectContent, Scope};
use crate::vsphere::session::Connection;
use crate::vsphere::soap::{deadline_after, MoRef};
use crate::vsphere::updates::{self, UpdateSet};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one long poll waits for a change before it returns empty.
const MAX_WAIT_S: u32 = 5;
/// How much longer than that an answer may take before the stream counts
/// as hung: a hung vCenter stops answering from memory within
/// `MAX_WAIT_S` + `GRACE` (15 s).
const GRACE: Duration = Duration::from_secs(10);
/// Objects per answer of `WaitForUpdatesEx` (more follow, `truncated`).
const MAX_OBJECT_UPDATES: u32 = 1000;
/// The bound of the follower's other calls (filters, reads).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause before following again on a renewed session.
const RENEW_PAUSE: Duration = Duration::from_millis(100);
/// The pause after a failure before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One type's filter: which paths it has.
struct Filter {
    filter: MoRef,
    paths: Vec<String>,
}

/// The follower's own state, not shared.
#[derive(Default)]
struct Follower {
    collector: Option<MoRef>,
    /// The collector's session.
    epoch: u64,
    /// The version to wait with; "" before the first answer.
    version: String,
    /// The whole state came (every truncated answer followed).
    synced: bool,
    filters: HashMap<String, Filter>,
}

/// Runs until the mirror stops.
pub(super) fn run(inner: &Inner, connection: &Connection, stop: &AtomicBool) {
    let mut follower = Follower::default();
    // A failure is logged when it starts or changes, not on every retry.
    let mut logged: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            follower.step(inner, connection, stop)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Internal(format!(
                "the mirror's follower failed: {}",
                crate::error::panic_text(&*panic).unwrap_or("a panic")
            )))
        });
        match outcome {
            Ok(()) => {
                if logged.take().is_some() && follower.collector.is_some() {
                    log::info!("mirror of {}: following again", connection.address());
                }
            }
            Err(error) => {
                let renewed = error.vsphere_kind() == Some(&VSphereKind::NotAuthenticated)
                    || error.is_fault("ManagedObjectNotFound");
                follower.forget(inner, connection, if renewed { None } else { Some(&error) });
                if !renewed {
                    let text = error.to_string();
                    if logged.as_deref() != Some(text.as_str()) {
                        log::warn!(
                            "mirror of {}: {text}; reading from vCenter directly until it answers again",
                            connection.address()
                        );
                        logged = Some(text);
                    }
                    pause(inner, stop, RETRY_PAUSE);
                } else {
                    // Not at full speed, should the server keep failing so.
                    pause(inner, stop, RENEW_PAUSE);
                }
            }
        }
    }
    if let Some(collector) = follower.collector.take() {
        // Its filters would keep costing vCenter until the session ends.
        let deadline = deadline_after(Duration::from_secs(1));
        let _ = updates::destroy_collector(connection, &collector, deadline);
    }
}

/// Reads `paths` of the objects of `kind` in `scope` from vCenter.
fn read(
    connection: &Connection,
    kind: &str,
    scope: Scope<'_>,
    paths: &[&str],
) -> Result<Vec<ObjectContent>, Error> {
    let mut contents = Vec::new();
    property::retrieve(
        connection,
        kind,
        scope,
        paths,
        deadline_after(CALL_TIMEOUT),
        &mut |content| {
            contents.push(content);
            Ok(())
        },
    )?;
    Ok(contents)
}

/// Drops properties (other than the key, the latest-named first) while
/// the mirror holds more values than its cap, and refuses them from then
/// on: they are read from vCenter on every request.
fn refuse_excess(inner: &Inner, state: &mut State, connection: &Connection) {
    let max_values = inner.max_values.load(Ordering::Relaxed) as usize;
    let mut total: usize = state.kinds.values().map(KindStore::values).sum();
    if total <= max_values {
        return;
    }
    let mut wanted = inner.wanted.locked();
    let mut kinds: Vec<&String> = state.kinds.keys().collect();
    kinds.sort();
    let kinds: Vec<String> = kinds.into_iter().cloned().collect();
    for kind in kinds {
        let Some(store) = state.kinds.get_mut(&kind) else {
            continue;
        };
        let key = key_property(&kind);
        let mut paths: Vec<String> = store
            .ready_paths()
            .into_iter()
            .filter(|path| path != key)
            .collect();
        paths.sort();
        while total > max_values {
            let Some(path) = paths.pop() else {
                break;
            };
            let before = store.values();
            store.drop_path(&path);
            total -= before - store.values();
            log::warn!(
                "mirror of {}: {kind} {path} would hold more than {max_values} values; read from vCenter instead",
                connection.address()
            );
            wanted
                .refused
                .entry(kind.clone())
                .or_default()
                .insert(path.clone());
            if let Some(asked) = wanted.asked.get_mut(&kind) {
                asked.remove(&path);
            }
            wanted.changed = true;
        }
    }
}

/// Sleeps `pause` unless the mirror stops first.
fn pause(inner: &Inner, stop: &AtomicBool, pause: Duration) {
    let wanted = inner.wanted.locked();
    if !stop.load(Ordering::SeqCst) {
        drop(crate::sync::wait(&inner.wake, wanted, Some(pause)));
    }
}

impl Follower {
    /// Drops the stream: the next step starts from the whole state again.
    fn forget(&mut self, inner: &Inner, connection: &Connection, error: Option<&Error>) {
        if let Some(collector) = self.collector.take() {
            // Best effort, and only while the host answers at all.
            if error.is_none() {
                let deadline = deadline_after(Duration::from_secs(2));
                let _ = updates::destroy_collector(connection, &collector, deadline);
            }
        }
        self.filters.clear();
        self.version.clear();
        self.synced = false;
        let mut state = inner.store.write_locked();
        state.status = match error {
            Some(error) => Status::Down(error.to_string()),
            None => Status::Syncing,
        };
        state.kinds.clear();
        state.alive_until = None;
        inner.wanted.locked().waiting_on = None;
    }

    /// One round: a collector if there is none, the filters made to match
    /// what is wanted, one long poll and its changes applied.
    fn step(
        &mut self,
        inner: &Inner,
        connection: &Connection,
        stop: &AtomicBool,
    ) -> Result<(), Error> {
        let current_epoch = connection.current().map(|session| session.epoch);
        if self.collector.is_some() && current_epoch != Some(self.epoch) {
            // The session was renewed: the collector went with the old one.
            self.forget(inner, connection, None);
        }
        if self.collector.is_none() {
            inner.store.write_locked().status = Status::Syncing;
            let (collector, epoch) =
                updates::create_collector(connection, deadline_after(CALL_TIMEOUT))?;
            self.collector = Some(collector);
            self.epoch = epoch;
            self.version.clear();
            self.synced = false;
            let mut state = inner.store.write_locked();
            state.epoch = epoch;
            state.kinds.clear();
        }
        self.match_filters(inner, connection)?;
        self.poll(inner, connection, stop)
    }

    /// The paths of each type asked for within the idle time (with the
    /// type's key), expired ones dropped from what is wanted.
    fn desired(inner: &Inner) -> HashMap<String, Vec<String>> {
        // When requests last read each mirrored path (the stores hold it,
        // so that reading from memory takes no lock of its own).
        let read: Vec<(String, String, Instant)> = {
            let state = inner.store.read_locked();
            state
                .kinds
                .iter()
                .flat_map(|(kind, store)| {
                    store
                        .touched()
                        .map(|(path, ms)| (kind.clone(), path.clone(), inner.instant_of(ms)))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let mut wanted = inner.wanted.locked();
        for (kind, path, at) in read {
            if let Some(asked) = wanted
                .asked
                .get_mut(&kind)
                .and_then(|paths| paths.get_mut(&path))
            {
                if at > *asked {
                    *asked = at;
                }
            }
        }
        wanted.changed = false;
        let idle = Duration::from_secs(inner.idle_s.load(Ordering::Relaxed));
        let mut out = HashMap::new();
        wanted.asked.retain(|kind, paths| {
            paths.retain(|_, at| at.elapsed() < idle);
            if paths.is_empty() {
                return false;
            }
            let mut list: Vec<String> = paths.keys().cloned().collect();
            list.sort();
            out.insert(kind.clone(), list);
            true
        });
        out
    }

    /// Makes each type's filter hold the wanted paths.
    fn match_filters(&mut self, inner: &Inner, connection: &Connection) -> Result<(), Error> {
        let collector = self.collector.clone().expect("a collector is made first");
        let desired = Follower::desired(inner);
        // Types nobody asks for any more.
        let gone: Vec<String> = self
            .filters
            .keys()
            .filter(|kind| !desired.contains_key(*kind))
            .cloned()
            .collect();
        for kind in gone {
            if let Some(filter) = self.filters.remove(&kind) {
                updates::destroy_filter(connection, &filter.filter, deadline_after(CALL_TIMEOUT))?;
            }
            inner.store.write_locked().kinds.remove(&kind);
        }
        for (kind, paths) in desired {
            if self
                .filters
                .get(&kind)
                .is_some_and(|filter| filter.paths == paths)
            {
                continue;
            }
            let deadline = deadline_after(CALL_TIMEOUT);
            let session = connection.session(deadline)?;
            let view = property::container_view(connection, &session, &kind, deadline)?;
            let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let spec = updates::view_spec(&view, &kind, &path_refs);
            let filter = match updates::create_filter(connection, &collector, &spec, deadline) {
                Err(error)
                    if error.is_fault("InvalidProperty") || error.is_fault("InvalidType") =>
                {
                    // A path vCenter will not follow: read from it on every
                    // request instead, and keep the filter as it was.
                    let old_paths: Vec<String> = self
                        .filters
                        .get(&kind)
                        .map(|filter| filter.paths.clone())
                        .unwrap_or_default();
                    let added: Vec<&String> = paths
                        .iter()
                        .filter(|path| !old_paths.contains(path))
                        .collect();
                    log::warn!(
                        "mirror of {}: vCenter refuses to follow {kind} {added:?} ({error}); read from vCenter instead",
                        connection.address()
                    );
                    let mut wanted = inner.wanted.locked();
                    for path in added {
                        wanted
                            .refused
                            .entry(kind.clone())
                            .or_default()
                            .insert(path.clone());
                        if let Some(asked) = wanted.asked.get_mut(&kind) {
                            asked.remove(path);
                        }
                    }
                    wanted.changed = true;
                    continue;
                }
                other => other?,
            };
            let old = self.filters.insert(
                kind.clone(),
                Filter {
                    filter,
                    paths: paths.clone(),
                },
            );
            let old_paths = old
                .as_ref()
                .map(|old| old.paths.clone())
                .unwrap_or_default();
            if let Some(old) = old {
                updates::destroy_filter(connection, &old.filter, deadline)?;
            }
            {
                let mut state = inner.store.write_locked();
                let store = state.kinds.entry(kind.clone()).or_default();
                for path in &old_paths {
                    if !paths.contains(path) {
                        store.drop_path(path);
                    }
                }
            }
            if self.version.is_empty() {
                // The first poll (version "") brings the whole state of
                // every filter made before it.
                continue;
            }
            // Streaming already: read the new paths' values now (changes
            // from here on come through the stream as well).
            let added: Vec<&str> = path_refs
                .iter()
                .copied()
                .filter(|path| !old_paths.iter().any(|old| old == path))
                .collect();
            self.read_in(inner, connection, &kind, &added)?;
        }
        Ok(())
    }

    /// Reads `paths` of every object of `kind` and takes them as current.
    fn read_in(
        &mut self,
        inner: &Inner,
        connection: &Connection,
        kind: &str,
        paths: &[&str],
    ) -> Result<(), Error> {
        if paths.is_empty() {
            return Ok(());
        }
        let contents = read(connection, kind, Scope::All, paths)?;
        let mut state = inner.store.write_locked();
        let held: usize = state.kinds.values().map(KindStore::values).sum();
        let adding: usize = contents.iter().map(|content| content.props.len()).sum();
        let max_values = inner.max_values.load(Ordering::Relaxed);
        if (held + adding) as u64 > max_values {
            drop(state);
            log::warn!(
                "mirror of {}: {kind} {paths:?} would hold more than {} values; read from vCenter instead",
                connection.address(),
                max_values
            );
            let mut wanted = inner.wanted.locked();
            let refused = wanted.refused.entry(kind.to_owned()).or_default();
            for path in paths {
                refused.insert((*path).to_owned());
            }
            if let Some(asked) = wanted.asked.get_mut(kind) {
                for path in paths {
                    asked.remove(*path);
                }
            }
            wanted.changed = true;
            return Ok(());
        }
        let store = state.kinds.entry(kind.to_owned()).or_default();
        store.set_members(&contents);
        for content in contents {
            store.set_read(content, paths);
        }
        let now_ms = inner.now_ms();
        for path in paths {
            store.mark_ready(path, now_ms);
        }
        store.reindex(key_property(kind));
        state.last_update = Some(Instant::now());
        Ok(())
    }

    /// One long poll; its changes applied.
    fn poll(
        &mut self,
        inner: &Inner,
        connection: &Connection,
        stop: &AtomicBool,
    ) -> Result<(), Error> {
        let collector = self.collector.clone().expect("a collector is made first");
        let initial = !self.synced;
        {
            let mut wanted = inner.wanted.locked();
            if wanted.changed && !initial {
                // New paths came while the filters were being made.
                return Ok(());
            }
            wanted.waiting_on = Some(collector.clone());
            wanted.cancel_sent = false;
        }
        let max_wait = if initial { 0 } else { MAX_WAIT_S };
        let bound = Duration::from_secs(u64::from(max_wait)) + GRACE;
        inner.store.write_locked().alive_until = Some(Instant::now() + bound);
        let answer = updates::wait_for_updates(
            connection,
            &collector,
            &self.version,
            max_wait,
            MAX_OBJECT_UPDATES,
            deadline_after(bound),
        );
        inner.wanted.locked().waiting_on = None;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let answer = match answer {
            Err(error) if error.is_fault("RequestCanceled") => return Ok(()),
            other => other?,
        };
        let now = Instant::now();
        let mut unresolved = Vec::new();
        let mut complete = false;
        {
            let mut state = inner.store.write_locked();
            state.last_answer = Some(now);
            if let Some(set) = &answer {
                unresolved = self.apply(inner, &mut state, set);
                if !set.version.is_empty() {
                    self.version = set.version.clone();
                }
                complete = !set.truncated;
            } else if initial {
                complete = true;
            }
            if initial && self.version.is_empty() {
                // A server that gives no version cannot be followed.
                return Err(Error::vsphere(
                    VSphereKind::Protocol,
                    "WaitForUpdatesEx answered without a version",
                ));
            }
            if initial && complete {
                self.synced = true;
                for (kind, filter) in &self.filters {
                    let store = state.kinds.entry(kind.clone()).or_default();
                    for path in &filter.paths {
                        store.mark_ready(path, inner.now_ms());
                    }
                    store.reindex(key_property(kind));
                }
                refuse_excess(inner, &mut state, connection);
                state.status = Status::InSync;
                log::info!(
                    "mirror of {}: in sync ({} objects)",
                    connection.address(),
                    state.kinds.values().map(KindStore::objects).sum::<usize>()
                );
            } else if !initial && state.status != Status::InSync {
                state.status = Status::InSync;
            }
        }
        // Changes that named a part of a value not in memory: read those
        // objects' properties again.
        for (kind, objects) in unresolved {
            let Some(filter) = self.filters.get(&kind) else {
                continue;
            };
            let paths: Vec<&str> = filter.paths.iter().map(String::as_str).collect();
            let contents = read(connection, &kind, Scope::Objects(&objects), &paths)?;
            let mut state = inner.store.write_locked();
            if let Some(store) = state.kinds.get_mut(&kind) {
                for content in contents {
                    store.set_read(content, &paths);
                }
                store.reindex(key_property(&kind));
            }
        }
        Ok(())
    }

    /// Applies an update set; returns the objects to read again, by type.
    fn apply(
        &self,
        inner: &Inner,
        state: &mut State,
        set: &UpdateSet,
    ) -> Vec<(String, Vec<MoRef>)> {
        let mut unresolved = Vec::new();
        let mut changed = false;
        for filter_update in &set.filters {
            let Some((kind, filter)) = self
                .filters
                .iter()
                .find(|(_, filter)| filter.filter == filter_update.filter)
            else {
                // A filter since replaced: its news come again by the new one.
                continue;
            };
            let store = state.kinds.entry(kind.clone()).or_default();
            let (again, applied) = store::apply(store, &filter_update.objects, &filter.paths);
            store.reindex(key_property(kind));
            inner.updates_applied.fetch_add(applied, Ordering::Relaxed);
            changed |= applied > 0;
            if !again.is_empty() {
                unresolved.push((kind.clone(), again));
            }
        }
        if changed {
            state.last_update = Some(Instant::now());
        }
        unresolved
    }
}
