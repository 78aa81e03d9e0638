//! Whether the vSphere host answers, cheaply: the host's `AboutInfo` comes
//! from memory while the host answered any call within [`FRESH`], and
//! otherwise from one `RetrieveServiceContent` call, which concurrent
//! callers share instead of each making their own. So `about` fails while
//! the host is down (as py-vpoller's does, which asks every time) and costs
//! at most one call a second while it is up; a host upgraded behind a kept
//! session is reported with its new version.

use crate::error::Error;
use crate::sync::{self, Lock};
use crate::vsphere::typetable::Kind;
use crate::vsphere::value;
use crate::vsphere::xml::Node;
use serde_json::Value;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long after the host's last answer it counts as up without asking.
pub(crate) const FRESH: Duration = Duration::from_secs(1);

/// The host's `AboutInfo` as JSON, shared.
pub(crate) type AboutInfo = Arc<Value>;

/// The last `about` the host sent, and the call under way to ask again.
pub(crate) struct About {
    latest: Mutex<Option<AboutInfo>>,
    flight: Mutex<Flight>,
    landed: Condvar,
}

/// The shared call: whether one is under way, and the outcome of the last.
#[derive(Default)]
struct Flight {
    under_way: bool,
    /// How many callers wait for the call under way.
    waiters: usize,
    /// Counts calls; an outcome names the call it came from.
    round: u64,
    outcome: Option<(u64, Result<AboutInfo, Error>)>,
}

impl About {
    pub fn new() -> About {
        About {
            latest: Mutex::new(None),
            flight: Mutex::new(Flight::default()),
            landed: Condvar::new(),
        }
    }

    /// Remembers the `about` of a `ServiceContent` the host sent.
    pub fn remember(&self, content: &Node) -> AboutInfo {
        let about = Arc::new(
            content
                .child("about")
                .map(|node| value::convert(node, Some(Kind::Data("AboutInfo"))))
                .unwrap_or(Value::Null),
        );
        *self.latest.locked() = Some(about.clone());
        about
    }

    /// The host's `about`: the one remembered when `answered_lately` (the
    /// host answered within [`FRESH`]), else the `ServiceContent` that
    /// `ask` fetches, shared with the callers that come while it is under
    /// way. A caller that waits longer than `deadline` gets `timed_out()`.
    pub fn get(
        &self,
        answered_lately: bool,
        deadline: Instant,
        ask: impl FnOnce() -> Result<Node, Error>,
        timed_out: impl Fn() -> Error,
    ) -> Result<AboutInfo, Error> {
        if answered_lately {
            if let Some(about) = self.latest.locked().clone() {
                return Ok(about);
            }
        }
        let mut flight = self.flight.locked();
        if flight.under_way {
            let awaited = flight.round;
            loop {
                if let Some((round, outcome)) = &flight.outcome {
                    // A later call's outcome is as fresh.
                    if *round >= awaited {
                        return outcome.clone();
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                flight.waiters += 1;
                flight = sync::wait(&self.landed, flight, Some(left));
                flight.waiters -= 1;
            }
        }
        flight.under_way = true;
        flight.round += 1;
        let round = flight.round;
        drop(flight);
        // Lands the call also when `ask` panics, so that no caller waits
        // for an outcome that never comes.
        let mut landing = Landing {
            about: self,
            round,
            outcome: Some(Err(Error::Internal(
                "asking the vSphere host for its about failed".into(),
            ))),
        };
        let outcome = ask().map(|content| self.remember(&content));
        landing.outcome = Some(outcome.clone());
        drop(landing);
        outcome
    }
}

/// Posts the outcome of call `round` and wakes its waiters, when dropped.
struct Landing<'a> {
    about: &'a About,
    round: u64,
    outcome: Option<Result<AboutInfo, Error>>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flight = self.about.flight.locked();
        flight.under_way = false;
        if let Some(outcome) = self.outcome.take() {
            flight.outcome = Some((self.round, outcome));
        }
        self.about.landed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::VSphereKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn content(version: &str) -> Node {
        let about = Node {
            name: "about".into(),
            children: vec![Node {
                name: "version".into(),
                text: version.into(),
                ..Node::default()
            }],
            ..Node::default()
        };
        Node {
            name: "returnval".into(),
            children: vec![about],
            ..Node::default()
        }
    }

    fn down() -> Error {
        Error::vsphere(VSphereKind::Unreachable, "down")
    }

    fn timed_out() -> Error {
        Error::vsphere(VSphereKind::Timeout, "timed out")
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// `about` of a host that did not answer lately.
    fn ask(about: &About, call: impl FnOnce() -> Result<Node, Error>) -> Result<AboutInfo, Error> {
        about.get(false, later(), call, timed_out)
    }

    #[test]
    fn memory_serves_only_while_the_host_answered_lately() {
        let about = About::new();
        about.remember(&content("6.5"));
        let asked = AtomicUsize::new(0);
        let upgraded = || {
            asked.fetch_add(1, Ordering::SeqCst);
            Ok(content("7.0"))
        };
        let fresh = about.get(true, later(), upgraded, timed_out).unwrap();
        assert_eq!(fresh["version"], "6.5");
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        let asked_again = ask(&about, upgraded).unwrap();
        assert_eq!(asked_again["version"], "7.0", "the host's new about");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        let failed = ask(&about, || Err(down()));
        assert_eq!(failed.unwrap_err(), down());
    }

    #[test]
    fn callers_that_come_while_a_call_is_under_way_share_its_outcome() {
        const FOLLOWERS: usize = 4;
        let about = About::new();
        let asked = AtomicUsize::new(0);
        let entered = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            let leader = scope.spawn(|| {
                ask(&about, || {
                    asked.fetch_add(1, Ordering::SeqCst);
                    entered.wait();
                    // Lands only once every follower waits for it.
                    while about.flight.locked().waiters < FOLLOWERS {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(down())
                })
            });
            entered.wait();
            let followers: Vec<_> = (0..FOLLOWERS)
                .map(|_| {
                    scope.spawn(|| {
                        ask(&about, || {
                            asked.fetch_add(1, Ordering::SeqCst);
                            Ok(content("7.0"))
                        })
                    })
                })
                .collect();
            assert_eq!(leader.join().unwrap().unwrap_err(), down());
            for follower in followers {
                assert_eq!(follower.join().unwrap().unwrap_err(), down());
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let about = About::new();
        let entered = std::sync::Barrier::new(2);
        let release = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            let leader = scope.spawn(|| {
                ask(&about, || {
                    entered.wait();
                    release.wait();
                    Ok(content("6.5"))
                })
            });
            entered.wait();
            let waited = about.get(false, Instant::now(), || Ok(content("x")), timed_out);
            assert_eq!(waited.unwrap_err(), timed_out());
            release.wait();
            assert!(leader.join().unwrap().is_ok());
        });
    }

    #[test]
    fn a_call_that_panics_still_lands() {
        let about = About::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ask(&about, || panic!("a bug"))
        }));
        assert!(panicked.is_err());
        assert!(!about.flight.locked().under_way);
        assert!(about
            .get(false, later(), || Ok(content("6.5")), timed_out)
            .is_ok());
    }
}
