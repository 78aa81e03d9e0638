//! Finding an object by a property value (its name, or a datastore's URL),
//! with py-vpoller's cache of lookups (hits and misses) for a TTL. One scan
//! of the property remembers every object it saw, so a sweep over N objects
//! costs one scan, not N. A cached object that has since been deleted or
//! renamed is noticed on use (the caller reads the property again) and
//! looked up afresh, so the cache never serves a deleted or renamed object.

use crate::error::Error;
use crate::sync::Lock;
use crate::vsphere::property::{self, Scope};
use crate::vsphere::session::Connection;
use crate::vsphere::soap::MoRef;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Key = (String, String, String);

/// The most lookups remembered; beyond it expired ones go first, then a
/// scan remembers no more than fits.
const MAX_ENTRIES: usize = 200_000;

pub(crate) struct LookupCache {
    ttl: Mutex<Duration>,
    entries: Mutex<HashMap<Key, (Option<MoRef>, Instant)>>,
}

impl LookupCache {
    pub fn new(ttl: Duration) -> LookupCache {
        LookupCache {
            ttl: Mutex::new(ttl),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_ttl(&self, ttl: Duration) {
        *self.ttl.locked() = ttl;
    }

    pub fn ttl(&self) -> Duration {
        *self.ttl.locked()
    }

    pub fn clear(&self) {
        self.entries.locked().clear();
    }

    fn get(&self, key: &Key) -> Option<Option<MoRef>> {
        let ttl = self.ttl();
        let mut entries = self.entries.locked();
        match entries.get(key) {
            Some((found, at)) if at.elapsed() < ttl => Some(found.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: Key, found: Option<MoRef>) {
        let ttl = *self.ttl.locked();
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.locked();
        // Bounded: expired entries go when the map grows large.
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(key, (found, Instant::now()));
    }

    pub fn forget(&self, kind: &str, property: &str, value: &str) {
        let key = (kind.to_owned(), property.to_owned(), value.to_owned());
        self.entries.locked().remove(&key);
    }

    /// The first object of managed type `kind` whose `property` equals
    /// `value`, or `None`; the answer comes from the cache when it is fresh.
    /// The flag says whether it did.
    pub fn find(
        &self,
        connection: &Connection,
        kind: &str,
        property: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<(Option<MoRef>, bool), Error> {
        let key = (kind.to_owned(), property.to_owned(), value.to_owned());
        if let Some(found) = self.get(&key) {
            return Ok((found, true));
        }
        let mut seen: HashMap<String, MoRef> = HashMap::new();
        property::retrieve(
            connection,
            kind,
            Scope::All,
            &[property],
            deadline,
            &mut |object| {
                if let Some(candidate) = object.get(property) {
                    if candidate.children.is_empty() {
                        // The first object with a value is the one found.
                        seen.entry(candidate.text.clone()).or_insert(object.obj);
                    }
                }
                Ok(())
            },
        )?;
        let found = seen.get(value).cloned();
        self.put_all(kind, property, seen);
        self.put(key, found.clone());
        Ok((found, false))
    }

    /// Remembers every object one scan saw, by its value.
    fn put_all(&self, kind: &str, property: &str, seen: HashMap<String, MoRef>) {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.locked();
        if entries.len() + seen.len() > MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        for (value, object) in seen {
            if entries.len() >= MAX_ENTRIES {
                break;
            }
            entries.insert(
                (kind.to_owned(), property.to_owned(), value),
                (Some(object), now),
            );
        }
    }
}
