//! The follower: one thread per mirrored host that owns the private
//! property collector, keeps one filter per managed type with the paths
//! asked for, and applies what `WaitForUpdatesEx` reports. Everything that
//! talks to vCenter for the mirror happens here, one call at a time, so
//! the order of reads and updates is the order they were made in.
//!
//! Every write to the shared state checks, under its lock, that this
//! follower was not stopped: a follower that outlives its stop (a call to
//! a hung vCenter) never writes into the state of the one after it.

use super::store::{self, KindStore};
use super::{key_property, Inner, State, Status, Wanted};
use crate::error::{Error, VSphereKind};
use crate::sync::{Lock, Shared as _};
use crate::vsphere::property::{self, ObjectContent, Scope};
use crate::vsphere::session::Connection;
use crate::vsphere::soap::{deadline_after, MoRef};
use crate::vsphere::updates::{self, UpdateSet};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{MutexGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// How long one long poll waits for a change before it returns empty.
const MAX_WAIT_S: u32 = 5;
/// How much longer than that an answer may take before the stream counts
/// as hung: a hung vCenter stops answering from memory within
/// `MAX_WAIT_S` + `GRACE` (15 s).
const GRACE: Duration = Duration::from_secs(10);
/// How long after an answer memory still counts as current while the
/// follower applies it and makes filters, before its next poll.
const AFTER_ANSWER: Duration = Duration::from_secs(2);
/// Objects per answer of `WaitForUpdatesEx` (more follow, `truncated`).
const MAX_OBJECT_UPDATES: u32 = 1000;
/// The bound of the follower's other calls (filters, reads, and the polls
/// that take the whole state).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The pauses after failures in a row: doubling from the first to the last.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(16);

/// One type's filter: which paths it has.
struct Filter {
    filter: MoRef,
    paths: Vec<String>,
}

/// What the follower works with: the shared state, the host, its stop.
struct Context<'a> {
    inner: &'a Inner,
    connection: &'a Connection,
    stop: &'a AtomicBool,
}

/// The follower was stopped: it writes nothing more.
fn stopped() -> Error {
    Error::Internal("the mirror's follower was stopped".into())
}

impl Context<'_> {
    /// The shared state for writing, unless this follower was stopped.
    fn state(&self) -> Result<RwLockWriteGuard<'_, State>, Error> {
        let state = self.inner.store.write_locked();
        if self.stop.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        Ok(state)
    }

    /// What is wanted, for writing, unless this follower was stopped.
    fn wanted(&self) -> Result<MutexGuard<'_, Wanted>, Error> {
        let wanted = self.inner.wanted.locked();
        if self.stop.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        Ok(wanted)
    }

    fn address(&self) -> String {
        self.connection.address()
    }

    /// Sleeps `pause` unless the mirror stops, or something new is wanted
    /// when `until_asked`.
    fn pause(&self, pause: Duration, until_asked: bool) {
        let wanted = self.inner.wanted.locked();
        if self.stop.load(Ordering::SeqCst) || (until_asked && wanted.changed) {
            return;
        }
        drop(crate::sync::wait(&self.inner.wake, wanted, Some(pause)));
    }

    /// Refuses `paths` of `kind`: read from vCenter from now on.
    fn refuse(&self, kind: &str, paths: &[&str]) -> Result<(), Error> {
        let mut wanted = self.wanted()?;
        for path in paths {
            wanted
                .refused
                .entry(kind.to_owned())
                .or_default()
                .insert((*path).to_owned());
            if let Some(asked) = wanted.asked.get_mut(kind) {
                asked.remove(*path);
            }
        }
        wanted.changed = true;
        Ok(())
    }
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
    /// The last answer was truncated: the rest is to be fetched at once.
    more: bool,
    filters: HashMap<String, Filter>,
}

/// Runs until the mirror stops.
pub(super) fn run(inner: &Inner, connection: &Connection, stop: &AtomicBool) {
    let context = Context {
        inner,
        connection,
        stop,
    };
    let mut follower = Follower::default();
    // A failure is logged when it starts or changes, not on every retry.
    let mut logged: Option<String> = None;
    let mut failures: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| follower.step(&context)))
                .unwrap_or_else(|panic| {
                    Err(Error::Internal(format!(
                        "the mirror's follower failed: {}",
                        crate::error::panic_text(&*panic).unwrap_or("a panic")
                    )))
                });
        match outcome {
            Ok(()) => {
                failures = 0;
                if logged.take().is_some() && follower.collector.is_some() {
                    log::info!("mirror of {}: following again", context.address());
                }
            }
            Err(_) if stop.load(Ordering::SeqCst) => break,
            Err(error) => {
                // The collector (with the session it was made in) is gone:
                // follow again at once, the first time.
                let renewed = error.is_fault("ManagedObjectNotFound");
                let _ = follower.forget(&context, if renewed { None } else { Some(&error) });
                if !renewed {
                    let text = error.to_string();
                    if logged.as_deref() != Some(text.as_str()) {
                        log::warn!(
                            "mirror of {}: {text}; reading from vCenter directly until it answers again",
                            context.address()
                        );
                        logged = Some(text);
                    }
                }
                if !renewed || failures > 0 {
                    let doublings = failures.min(5);
                    context.pause(
                        (FIRST_PAUSE * 2u32.pow(doublings)).min(LONGEST_PAUSE),
                        false,
                    );
                }
                failures = failures.saturating_add(1);
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

/// Gives the memory a whole state's reading left free back to the system:
/// the answers are parsed into trees that live only until applied, and
/// glibc would otherwise keep their pages in the follower's arena.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // A libc call the mirror needs whatever uses the library, so this
        // `unsafe` lives outside `capi` (as `fork.rs`'s does).
        // SAFETY: malloc_trim takes no pointers and is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Whether `error` says the host did not answer at all (nothing to give
/// back to it).
fn unanswered(error: &Error) -> bool {
    matches!(
        error.vsphere_kind(),
        Some(VSphereKind::Timeout | VSphereKind::Unreachable)
    )
}

/// Drops properties (other than the key, the latest-named first) while
/// the mirror holds more values than its cap, and refuses them from then
/// on: they are read from vCenter on every request.
fn refuse_excess(context: &Context<'_>, state: &mut State) -> Result<(), Error> {
    let max_values = context.inner.max_values.load(Ordering::Relaxed) as usize;
    let mut total: usize = state.kinds.values().map(KindStore::values).sum();
    if total <= max_values {
        return Ok(());
    }
    let mut kinds: Vec<String> = state.kinds.keys().cloned().collect();
    kinds.sort();
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
                context.address()
            );
            context.refuse(&kind, &[path.as_str()])?;
        }
    }
    Ok(())
}

impl Follower {
    /// Drops the stream: the next step starts from the whole state again.
    /// The collector is given back unless the host did not answer. What
    /// was refused is tried again with a new state, but not when the
    /// stream ends because nothing is asked for.
    fn forget(&mut self, context: &Context<'_>, error: Option<&Error>) -> Result<(), Error> {
        self.end(context, error, true)
    }

    fn end(
        &mut self,
        context: &Context<'_>,
        error: Option<&Error>,
        retry_refused: bool,
    ) -> Result<(), Error> {
        if let Some(collector) = self.collector.take() {
            if !error.is_some_and(unanswered) {
                let deadline = deadline_after(Duration::from_secs(2));
                let _ = updates::destroy_collector(context.connection, &collector, deadline);
            }
        }
        self.filters.clear();
        self.version.clear();
        self.synced = false;
        self.more = false;
        let mut state = context.state()?;
        state.status = match error {
            Some(error) => Status::Down(error.to_string()),
            None => Status::Syncing,
        };
        state.kinds.clear();
        state.alive_until = None;
        drop(state);
        let mut wanted = context.wanted()?;
        wanted.waiting_on = None;
        if retry_refused {
            wanted.refused.clear();
        }
        Ok(())
    }

    /// One round: a collector if there is none, the filters made to match
    /// what is wanted, one long poll and its changes applied.
    fn step(&mut self, context: &Context<'_>) -> Result<(), Error> {
        let current_epoch = context.connection.current().map(|session| session.epoch);
        if self.collector.is_some() && current_epoch != Some(self.epoch) {
            // The session was renewed: the collector went with the old one.
            self.forget(context, None)?;
        }
        let desired = Follower::desired(context.inner);
        if desired.is_empty() && !self.more {
            // Nothing is asked for (any more): no collector, no polls.
            if self.collector.is_some() {
                self.end(context, None, false)?;
            }
            context.state()?.status = Status::Idle;
            context.pause(Duration::from_secs(1), true);
            return Ok(());
        }
        if self.collector.is_none() {
            context.state()?.status = Status::Syncing;
            let (collector, epoch) =
                updates::create_collector(context.connection, deadline_after(CALL_TIMEOUT))?;
            self.collector = Some(collector);
            self.epoch = epoch;
            self.version.clear();
            self.synced = false;
            self.more = false;
            let mut state = context.state()?;
            state.epoch = epoch;
            state.kinds.clear();
        }
        if !self.more {
            self.match_filters(context, desired)?;
        }
        self.poll(context)
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

    /// Makes a filter of `kind` with `paths` over its container view.
    fn create_filter(
        &self,
        context: &Context<'_>,
        kind: &str,
        paths: &[&str],
    ) -> Result<MoRef, Error> {
        let collector = self.collector.clone().expect("a collector is made first");
        let connection = context.connection;
        let deadline = deadline_after(CALL_TIMEOUT);
        let session = connection.session(deadline)?;
        let view = property::container_view(connection, &session, kind, deadline)?;
        let spec = updates::view_spec(&view, kind, paths);
        updates::create_filter(connection, &collector, &spec, deadline).inspect_err(|error| {
            if error.is_fault("ManagedObjectNotFound") {
                // The view (or the collector) is gone: a new one next time.
                property::forget_view(connection, kind);
            }
        })
    }

    /// Finds which of `added` (to `kept`) vCenter refuses to follow, one
    /// at a time, refusing those; keeps the filter as it was.
    fn refuse_unfollowed(
        &self,
        context: &Context<'_>,
        kind: &str,
        kept: &[String],
        added: &[&str],
        error: &Error,
    ) -> Result<(), Error> {
        let mut accepted: Vec<&str> = kept.iter().map(String::as_str).collect();
        let mut refused = Vec::new();
        if added.len() <= 1 || error.is_fault("InvalidType") {
            // One path, or a type vCenter does not follow at all.
            refused.extend_from_slice(added);
        } else {
            for path in added {
                let mut trial = accepted.clone();
                trial.push(path);
                match self.create_filter(context, kind, &trial) {
                    Ok(filter) => {
                        updates::destroy_filter(
                            context.connection,
                            &filter,
                            deadline_after(CALL_TIMEOUT),
                        )?;
                        accepted.push(path);
                    }
                    Err(error) if error.is_fault("InvalidProperty") => refused.push(*path),
                    Err(error) => return Err(error),
                }
            }
        }
        log::warn!(
            "mirror of {}: vCenter refuses to follow {kind} {refused:?} ({error}); read from vCenter instead",
            context.address()
        );
        context.refuse(kind, &refused)
    }

    /// Makes each type's filter hold the `desired` paths.
    fn match_filters(
        &mut self,
        context: &Context<'_>,
        desired: HashMap<String, Vec<String>>,
    ) -> Result<(), Error> {
        let connection = context.connection;
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
            context.state()?.kinds.remove(&kind);
        }
        for (kind, paths) in desired {
            let old_paths: Vec<String> = self
                .filters
                .get(&kind)
                .map(|filter| filter.paths.clone())
                .unwrap_or_default();
            if old_paths == paths {
                continue;
            }
            let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let added: Vec<&str> = path_refs
                .iter()
                .copied()
                .filter(|path| !old_paths.iter().any(|old| old == path))
                .collect();
            let filter = match self.create_filter(context, &kind, &path_refs) {
                Err(error)
                    if error.is_fault("InvalidProperty") || error.is_fault("InvalidType") =>
                {
                    let kept: Vec<String> = old_paths
                        .iter()
                        .filter(|path| paths.contains(path))
                        .cloned()
                        .collect();
                    if error.is_fault("InvalidType") {
                        self.refuse_unfollowed(context, &kind, &[], &path_refs, &error)?;
                    } else {
                        self.refuse_unfollowed(context, &kind, &kept, &added, &error)?;
                    }
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
            if let Some(old) = old {
                updates::destroy_filter(connection, &old.filter, deadline_after(CALL_TIMEOUT))?;
            }
            {
                let mut state = context.state()?;
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
            self.read_in(context, &kind, &added)?;
        }
        Ok(())
    }

    /// Reads `paths` of every object of `kind` and takes them as current.
    fn read_in(&mut self, context: &Context<'_>, kind: &str, paths: &[&str]) -> Result<(), Error> {
        if paths.is_empty() {
            return Ok(());
        }
        let contents = read(context.connection, kind, Scope::All, paths)?;
        let mut state = context.state()?;
        let held: usize = state.kinds.values().map(KindStore::values).sum();
        let adding: usize = contents.iter().map(|content| content.props.len()).sum();
        let max_values = context.inner.max_values.load(Ordering::Relaxed);
        if (held + adding) as u64 > max_values {
            drop(state);
            log::warn!(
                "mirror of {}: {kind} {paths:?} would hold more than {max_values} values; read from vCenter instead",
                context.address()
            );
            let key = key_property(kind);
            let refused: Vec<&str> = paths.iter().copied().filter(|path| *path != key).collect();
            return context.refuse(kind, &refused);
        }
        let now_ms = context.inner.now_ms();
        let store = state.kinds.entry(kind.to_owned()).or_default();
        store.set_members(&contents);
        for content in contents {
            store.set_read(content, paths);
        }
        for path in paths {
            store.mark_ready(path, now_ms);
        }
        store.reindex(key_property(kind));
        state.last_update = Some(Instant::now());
        drop(state);
        release_free_memory();
        Ok(())
    }

    /// One long poll; its changes applied.
    fn poll(&mut self, context: &Context<'_>) -> Result<(), Error> {
        let collector = self.collector.clone().expect("a collector is made first");
        let initial = !self.synced;
        {
            let mut wanted = context.wanted()?;
            if wanted.changed && !initial && !self.more {
                // New paths came while the filters were being made.
                return Ok(());
            }
            wanted.waiting_on = Some(collector.clone());
            wanted.cancel_sent = false;
        }
        // The whole state, and the rest of a truncated answer, at once.
        let max_wait = if initial || self.more { 0 } else { MAX_WAIT_S };
        let bound = if initial || self.more {
            CALL_TIMEOUT
        } else {
            Duration::from_secs(u64::from(max_wait)) + GRACE
        };
        context.state()?.alive_until = Some(Instant::now() + bound);
        let answer = updates::wait_for_updates(
            context.connection,
            &collector,
            &self.version,
            max_wait,
            MAX_OBJECT_UPDATES,
            deadline_after(bound),
        );
        context.wanted()?.waiting_on = None;
        let answer = match answer {
            Err(error) if error.is_fault("RequestCanceled") => return Ok(()),
            other => other?,
        };
        let now = Instant::now();
        let mut unresolved = Vec::new();
        {
            let mut state = context.state()?;
            state.last_answer = Some(now);
            state.alive_until = Some(now + AFTER_ANSWER);
            let mut complete = true;
            if let Some(set) = &answer {
                unresolved = self.apply(context, &mut state, set)?;
                if !set.version.is_empty() {
                    self.version = set.version.clone();
                }
                complete = !set.truncated;
            }
            self.more = !complete;
            if initial && self.version.is_empty() {
                // A server that gives no version cannot be followed.
                return Err(Error::vsphere(
                    VSphereKind::Protocol,
                    "WaitForUpdatesEx answered without a version",
                ));
            }
            if initial && complete {
                self.synced = true;
                let now_ms = context.inner.now_ms();
                for (kind, filter) in &self.filters {
                    let store = state.kinds.entry(kind.clone()).or_default();
                    for path in &filter.paths {
                        store.mark_ready(path, now_ms);
                    }
                    store.reindex(key_property(kind));
                }
                refuse_excess(context, &mut state)?;
                state.status = Status::InSync;
                log::info!(
                    "mirror of {}: in sync ({} objects)",
                    context.address(),
                    state.kinds.values().map(KindStore::objects).sum::<usize>()
                );
                drop(state);
                release_free_memory();
            }
        }
        self.read_again(context, unresolved)
    }

    /// Reads again the objects whose changes named a part of a value not
    /// in memory (or that are not known yet).
    fn read_again(
        &mut self,
        context: &Context<'_>,
        unresolved: Vec<(String, Vec<MoRef>)>,
    ) -> Result<(), Error> {
        for (kind, objects) in unresolved {
            let Some(filter) = self.filters.get(&kind) else {
                continue;
            };
            let paths: Vec<&str> = filter.paths.iter().map(String::as_str).collect();
            let contents = match read(context.connection, &kind, Scope::Objects(&objects), &paths) {
                Err(error) if error.is_fault("ManagedObjectNotFound") => {
                    // One of them is gone (its leave follows): the others
                    // one at a time.
                    let mut contents = Vec::new();
                    for object in &objects {
                        match read(
                            context.connection,
                            &kind,
                            Scope::Objects(std::slice::from_ref(object)),
                            &paths,
                        ) {
                            Ok(mut read) => contents.append(&mut read),
                            Err(error) if error.is_fault("ManagedObjectNotFound") => {}
                            Err(error) => return Err(error),
                        }
                    }
                    contents
                }
                other => other?,
            };
            let mut state = context.state()?;
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
        context: &Context<'_>,
        state: &mut State,
        set: &UpdateSet,
    ) -> Result<Vec<(String, Vec<MoRef>)>, Error> {
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
            let outcome = store::apply(store, &filter_update.objects, &filter.paths);
            if outcome.view_gone {
                property::forget_view(context.connection, kind);
                return Err(Error::fault(
                    "ManagedObjectNotFound",
                    &format!("the container view of {kind} went away"),
                ));
            }
            store.reindex(key_property(kind));
            context
                .inner
                .updates_applied
                .fetch_add(outcome.applied, Ordering::Relaxed);
            changed |= outcome.applied > 0;
            if !outcome.unresolved.is_empty() {
                unresolved.push((kind.clone(), outcome.unresolved));
            }
        }
        if changed {
            state.last_update = Some(Instant::now());
        }
        Ok(unresolved)
    }
}
