//! The live mirror: a copy in memory of the properties tasks ask for,
//! kept current by the property collector's update stream, so that
//! requests are answered without a call to vCenter.
//!
//! What it mirrors is what is asked for: a read answered by vCenter (see
//! `agent::reads`, the one place that chooses) notes its managed type and
//! property paths here; the follower thread (`follow`) adds them to the
//! type's filter, reads their current values once and applies the changes
//! `WaitForUpdatesEx` reports from then on. Later reads of those paths are
//! answered from memory ([`Mirror::read`]), as long as the update stream is
//! known alive: the follower's long poll answered or is under way within
//! its bound, on the session the collector belongs to. While it is not
//! (syncing, vCenter down or hung, the session renewed) every read goes
//! to vCenter, exactly as with the mirror off.
//!
//! Paths nobody asked for within `mirror_idle_s` leave the filter; the
//! values held are capped by `mirror_max_values`.

mod follow;
pub(crate) mod store;

use crate::sync::{Lock, Shared as _};
use crate::vsphere::property::ObjectContent;
use crate::vsphere::session::Connection;
use crate::vsphere::soap::MoRef;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use store::KindStore;

pub(crate) use follow::release_free_memory;

/// The managed types a container view can hold (managed entities), the
/// only ones mirrored.
const MIRRORED_KINDS: &[&str] = &[
    "VirtualMachine",
    "HostSystem",
    "Datastore",
    "Datacenter",
    "ClusterComputeResource",
    "ComputeResource",
    "ResourcePool",
    "VirtualApp",
    "Network",
    "DistributedVirtualPortgroup",
    "Folder",
    "StoragePod",
];

/// Properties for which vCenter sends no change notifications (the API
/// reference says so of `configStatus`): never mirrored, always read.
pub(crate) const NOT_NOTIFIED: &[&str] = &["configStatus"];

/// The property that identifies an object of `kind` in a request: datastores
/// are named by their URL (`info.url`), everything else by `name`.
pub(crate) fn key_property(kind: &str) -> &'static str {
    if kind == "Datastore" {
        "info.url"
    } else {
        "name"
    }
}

/// Where the mirror stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Nothing asked for yet (no follower running).
    Idle,
    /// Taking the state from vCenter: reads go to vCenter meanwhile.
    Syncing,
    /// The update stream is alive: mirrored paths are answered from memory.
    InSync,
    /// The stream broke (the reason); the follower tries again.
    Down(String),
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Syncing => "syncing",
            Status::InSync => "in sync",
            Status::Down(_) => "down",
        }
    }
}

/// What the follower wants to know of the paths asked for, by type.
#[derive(Default)]
struct Wanted {
    /// Path to when it was last asked for, by managed type.
    asked: HashMap<String, HashMap<String, Instant>>,
    /// Paths refused (the cap on values), by type.
    refused: HashMap<String, HashSet<String>>,
    /// A path was added since the follower last looked.
    changed: bool,
    /// The follower is in a long poll on this collector (a new path wakes
    /// it with `CancelWaitForUpdates`).
    waiting_on: Option<MoRef>,
    /// A cancel was sent for the current poll.
    cancel_sent: bool,
}

/// The state one mirror shares with its follower thread.
struct Inner {
    store: RwLock<State>,
    wanted: Mutex<Wanted>,
    /// Wakes the follower from a pause (backing off after a failure).
    wake: Condvar,
    /// In seconds; changed by the agent's options.
    idle_s: AtomicU64,
    max_values: AtomicU64,
    answered_from_memory: AtomicU64,
    answered_directly: AtomicU64,
    updates_applied: AtomicU64,
    /// The origin of the stores' read times.
    started: Instant,
}

impl Inner {
    /// Milliseconds since the mirror was made.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant of a store's read time.
    fn instant_of(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }
}

/// The objects and where the stream stands.
struct State {
    status: Status,
    kinds: HashMap<String, KindStore>,
    /// The session (its epoch) the collector belongs to: a renewed session
    /// means the stream is gone.
    epoch: u64,
    /// When the stream last answered (updates or none).
    last_answer: Option<Instant>,
    /// When the last change was applied.
    last_update: Option<Instant>,
    /// The bound of the long poll under way: past it, the stream is not
    /// known alive.
    alive_until: Option<Instant>,
}

/// The follower thread of a mirror and how to stop it.
struct Running {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
}

/// `Mirror::started_in` before a follower was started.
const NEVER: u64 = u64::MAX;

/// A mirror of one vSphere host, owned by its agent.
pub(crate) struct Mirror {
    /// The fork generation whose process started the follower. In a
    /// forked child of that process the mirror is not used at all (reads
    /// go to vCenter): the parent's thread is not there, and a lock it
    /// held at the fork would never be released.
    started_in: AtomicU64,
    /// The address of the connection the follower uses (0: none): memory
    /// answers only requests on that connection, whose session epochs
    /// the follower's are.
    following: std::sync::atomic::AtomicUsize,
    inner: Arc<Inner>,
    running: Mutex<Option<Running>>,
    connection: Mutex<Option<Arc<Connection>>>,
}

/// A mirror's counters and state, for `status`.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub status: Status,
    pub objects: usize,
    pub values: usize,
    pub properties: usize,
    pub last_update_age: Option<Duration>,
    pub updates_applied: u64,
    pub answered_from_memory: u64,
    pub answered_directly: u64,
}

impl Stats {
    /// As the worker's `status` shows it.
    pub fn to_json(&self, calls: &BTreeMap<String, u64>) -> Value {
        let mut value = json!({
            "state": self.status.name(),
            "objects": self.objects,
            "properties": self.properties,
            "values": self.values,
            "last_update_age_s": self.last_update_age.map(|age| age.as_millis() as f64 / 1000.0),
            "updates_applied": self.updates_applied,
            "answered_from_memory": self.answered_from_memory,
            "answered_directly": self.answered_directly,
            "soap_calls": calls,
        });
        if let Status::Down(reason) = &self.status {
            value["down_because"] = Value::String(reason.clone());
        }
        value
    }
}

impl Mirror {
    pub fn new(idle: Duration, max_values: u64) -> Mirror {
        Mirror {
            started_in: AtomicU64::new(NEVER),
            following: std::sync::atomic::AtomicUsize::new(0),
            inner: Arc::new(Inner {
                store: RwLock::new(State {
                    status: Status::Idle,
                    kinds: HashMap::new(),
                    epoch: 0,
                    last_answer: None,
                    last_update: None,
                    alive_until: None,
                }),
                wanted: Mutex::new(Wanted::default()),
                wake: Condvar::new(),
                idle_s: AtomicU64::new(idle.as_secs().max(1)),
                max_values: AtomicU64::new(max_values),
                answered_from_memory: AtomicU64::new(0),
                answered_directly: AtomicU64::new(0),
                updates_applied: AtomicU64::new(0),
                started: Instant::now(),
            }),
            running: Mutex::new(None),
            connection: Mutex::new(None),
        }
    }

    /// Whether the stream is known alive on `connection`'s current session.
    fn alive(&self, state: &State, connection: &Connection) -> bool {
        if self.following.load(Ordering::Acquire) != connection as *const Connection as usize {
            return false;
        }
        if state.status != Status::InSync {
            return false;
        }
        if state
            .alive_until
            .is_some_and(|until| Instant::now() > until)
        {
            return false;
        }
        connection
            .current()
            .is_some_and(|session| session.epoch == state.epoch)
    }

    /// What the update stream says of the host, for `about`: `Some(true)`
    /// while it is alive, `Some(false)` while it is down (the host does not
    /// answer), `None` when it cannot tell (not following, syncing).
    pub fn liveness(&self, connection: &Connection) -> Option<bool> {
        if !self.follower_running() {
            return None;
        }
        let state = self.inner.store.read_locked();
        match state.status {
            Status::Down(_) => Some(false),
            Status::InSync => Some(self.alive(&state, connection)),
            Status::Idle | Status::Syncing => None,
        }
    }

    fn follower_running(&self) -> bool {
        self.started_in.load(Ordering::Acquire) == crate::fork::generation()
    }

    /// Whether this process may use the mirror: it started the follower,
    /// or nobody did yet.
    fn usable(&self) -> bool {
        let started_in = self.started_in.load(Ordering::Acquire);
        started_in == NEVER || started_in == crate::fork::generation()
    }

    /// The objects of `kind` in `scope` with `paths`, from memory; `None`
    /// when memory cannot answer (not mirrored, not in sync, an object
    /// not known), and the caller asks vCenter.
    pub fn read(
        &self,
        connection: &Connection,
        kind: &str,
        references: Option<&[MoRef]>,
        paths: &[&str],
    ) -> Option<Vec<ObjectContent>> {
        if paths.is_empty() || !self.follower_running() {
            return None;
        }
        let state = self.inner.store.read_locked();
        if !self.alive(&state, connection) {
            return None;
        }
        let store = state.kinds.get(kind)?;
        if !paths.iter().all(|path| store.is_ready(path)) {
            return None;
        }
        let found = match references {
            None => store.all(paths),
            Some(references) => store.some(references, paths),
        };
        if found.is_some() {
            store.touch(paths, self.inner.now_ms());
        }
        found
    }

    /// The object of `kind` whose `key` is `value` (`Some(None)`: there is
    /// none), from memory; `None` when memory cannot tell.
    pub fn find(
        &self,
        connection: &Connection,
        kind: &str,
        key: &'static str,
        value: &str,
    ) -> Option<Option<MoRef>> {
        if !self.follower_running() {
            return None;
        }
        let state = self.inner.store.read_locked();
        if !self.alive(&state, connection) {
            return None;
        }
        let store = state.kinds.get(kind)?;
        if !store.is_ready(key) {
            return None;
        }
        let found = store.find(key, value);
        if found.is_some() {
            store.touch(&[key], self.inner.now_ms());
        }
        found
    }

    /// Counts an answer to a task from memory or not.
    pub fn count_answer(&self, from_memory: bool) {
        if !self.usable() {
            return;
        }
        let counter = if from_memory {
            &self.inner.answered_from_memory
        } else {
            &self.inner.answered_directly
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that `paths` of `kind` were read from vCenter: the mirror
    /// takes them on (and starts following the host when it does not yet).
    pub fn asked(
        &self,
        connection: &Arc<Connection>,
        kind: &str,
        paths: &[&str],
        key: &'static str,
    ) {
        if !MIRRORED_KINDS.contains(&kind) || !self.usable() {
            return;
        }
        let now = Instant::now();
        let mut cancel = None;
        {
            let mut wanted = self.inner.wanted.locked();
            let refused = wanted.refused.get(kind).cloned().unwrap_or_default();
            let asked = wanted.asked.entry(kind.to_owned()).or_default();
            let mut added = false;
            for path in paths.iter().copied().chain(std::iter::once(key)) {
                if NOT_NOTIFIED.contains(&path) || refused.contains(path) || path.is_empty() {
                    continue;
                }
                if asked.insert(path.to_owned(), now).is_none() {
                    added = true;
                }
            }
            if added {
                wanted.changed = true;
                if !wanted.cancel_sent {
                    if let Some(collector) = wanted.waiting_on.clone() {
                        wanted.cancel_sent = true;
                        cancel = Some(collector);
                    }
                }
                self.inner.wake.notify_all();
            }
        }
        self.ensure_follower(connection);
        if let Some(collector) = cancel {
            // The follower is in a long poll: end it, so that it adds the
            // new paths now. Failing is harmless: the poll ends by itself.
            let deadline = crate::vsphere::soap::deadline_after(Duration::from_secs(5));
            let _ = crate::vsphere::updates::cancel_wait(connection, &collector, deadline);
        }
    }

    /// Starts the follower thread unless it runs.
    fn ensure_follower(&self, connection: &Arc<Connection>) {
        let generation = crate::fork::generation();
        let mut running = self.running.locked();
        if running.is_some() {
            return;
        }
        let (done_tx, done) = mpsc::channel();
        let inner = self.inner.clone();
        let follow_connection = connection.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let follow_stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("vpoller-mirror".into())
            .spawn(move || {
                follow::run(&inner, &follow_connection, &follow_stop);
                let _ = done_tx.send(());
            });
        if spawned.is_ok() {
            *running = Some(Running { stop, done });
            *self.connection.locked() = Some(connection.clone());
            self.following
                .store(Arc::as_ptr(connection) as usize, Ordering::Release);
            self.started_in.store(generation, Ordering::Release);
        }
    }

    /// The counters and state.
    pub fn stats(&self) -> Stats {
        if !self.usable() {
            return Stats {
                status: Status::Idle,
                objects: 0,
                values: 0,
                properties: 0,
                last_update_age: None,
                updates_applied: 0,
                answered_from_memory: 0,
                answered_directly: 0,
            };
        }
        let state = self.inner.store.read_locked();
        let status = if self.follower_running() {
            state.status.clone()
        } else {
            Status::Idle
        };
        let properties = self
            .inner
            .wanted
            .locked()
            .asked
            .values()
            .map(HashMap::len)
            .sum();
        Stats {
            status,
            objects: state.kinds.values().map(KindStore::objects).sum(),
            values: state.kinds.values().map(KindStore::values).sum(),
            properties,
            last_update_age: state.last_update.map(|at| at.elapsed()),
            updates_applied: self.inner.updates_applied.load(Ordering::Relaxed),
            answered_from_memory: self.inner.answered_from_memory.load(Ordering::Relaxed),
            answered_directly: self.inner.answered_directly.load(Ordering::Relaxed),
        }
    }

    /// Sets how long unasked paths stay and how many values are held.
    pub fn set_limits(&self, idle: Duration, max_values: u64) {
        self.inner
            .idle_s
            .store(idle.as_secs().max(1), Ordering::Relaxed);
        let old = self.inner.max_values.swap(max_values, Ordering::Relaxed);
        if old != max_values && self.usable() {
            // What the old cap refused may fit now.
            self.inner.wanted.locked().refused.clear();
        }
    }

    /// Stops following and forgets everything (the options changed how
    /// the host is reached, or the mirror was turned off); the next read
    /// from vCenter starts it again.
    pub fn reset(&self) {
        if !self.usable() {
            return;
        }
        self.stop();
        let mut state = self.inner.store.write_locked();
        state.kinds.clear();
        state.status = Status::Idle;
        drop(state);
        let mut wanted = self.inner.wanted.locked();
        *wanted = Wanted::default();
    }

    /// Stops the follower (ending its poll) and waits a little for it.
    fn stop(&self) {
        if !self.follower_running() {
            // Not started, or started by the process this one forked from.
            return;
        }
        // Under the lock that starts followers, so that none starts
        // between taking this one and marking the mirror stopped.
        let running = {
            let mut running = self.running.locked();
            let Some(taken) = running.take() else {
                return;
            };
            self.started_in.store(NEVER, Ordering::Release);
            self.following.store(0, Ordering::Release);
            taken
        };
        running.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
        let collector = self.inner.wanted.locked().waiting_on.clone();
        let connection = self.connection.locked().take();
        if let (Some(collector), Some(connection)) = (collector, connection.as_ref()) {
            let deadline = crate::vsphere::soap::deadline_after(Duration::from_secs(2));
            let _ = crate::vsphere::updates::cancel_wait(connection, &collector, deadline);
        }
        drop(connection);
        // It ends its poll, gives its collector back and, holding the last
        // reference to the connection, logs out: a few calls.
        let _ = running.done.recv_timeout(Duration::from_secs(8));
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop();
    }
}
