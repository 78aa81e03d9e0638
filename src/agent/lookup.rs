//! Finding an object by a property value (its name, or a datastore's URL),
//! with py-vpoller's cache of lookups (hits and misses) for a TTL. A cached
//! object that has since been deleted is noticed on use and looked up again,
//! so the cache never serves a deleted object.

use crate::error::Error;
use crate::sync::Lock;
use crate::vsphere::property::{self, Scope};
use crate::vsphere::session::Connection;
use crate::vsphere::soap::MoRef;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Key = (String, String, String);

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
        if entries.len() >= 100_000 {
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
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
        let mut found = None;
        property::retrieve(
            connection,
            kind,
            Scope::All,
            &[property],
            deadline,
            &mut |object| {
                if found.is_none()
                    && object.get(property).is_some_and(|candidate| {
                        candidate.children.is_empty() && candidate.text == value
                    })
                {
                    found = Some(object.obj);
                }
                Ok(())
            },
        )?;
        self.put(key, found.clone());
        Ok((found, false))
    }
}
