//! `vpoller-exporter`: vmware_exporter's Prometheus metrics, from the
//! agent's live mirror instead of a full read of vCenter per scrape.
//!
//! The same HTTP interface as vmware_exporter 0.18.4 (`/metrics` with
//! `?section=`, `?vsphere_host=` or `?target=`; `/healthz`; `/`), the same
//! configuration ([`config`]), the same families, help texts, labels and
//! values (`families`, `collect`). One [`Agent`] per vSphere host
//! scraped keeps the properties read in its mirror, so a scrape in the
//! steady state reads memory only; the performance counters come from a
//! keeper that reads them in the background once per scrape interval
//! (`perf`). Scrapes of one host that overlap share one collection and
//! its bytes. The exporter's own families (`vpoller_exporter_*`) follow
//! each answer: whether vCenter answered (`vpoller_exporter_up`), the
//! collection's duration, the mirror's state and the SOAP calls by method.

mod collect;
pub mod config;
mod families;
pub mod http;
mod perf;
pub mod text;

use crate::agent::{Agent, AgentOptions};
use crate::error::Error;
use crate::sync::Lock;
use config::{Config, Section};
use http::{Request, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use text::{Family, Type};

/// The port vmware_exporter listens on.
pub const DEFAULT_PORT: u16 = 9272;
/// The most vSphere hosts served at once (hosts named by scrapes come and
/// go; the longest unused one makes room).
pub const MOST_TARGETS: usize = 64;
/// A host nobody scraped for this long is dropped (its mirror and keeper
/// stop).
pub const TARGET_IDLE: Duration = Duration::from_secs(900);
/// How long a collection may take when Prometheus does not say
/// (`X-Prometheus-Scrape-Timeout-Seconds`, taken up to an hour).
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(60);
/// The part of Prometheus' scrape timeout left for sending the answer.
const SEND_MARGIN: Duration = Duration::from_millis(500);

const INDEX: &str = "<html>
            <head><title>VMware Exporter</title></head>
            <body>
            <h1>VMware Exporter</h1>
            <p><a href=\"/metrics\">Metrics</a></p>
            </body>
            </html>";

/// The text of the 404 page, as vmware_exporter's web server writes it.
const NOT_FOUND: &str = "
<html>
  <head><title>404 - No Such Resource</title></head>
  <body>
    <h1>No Such Resource</h1>
    <p>No such child resource.</p>
  </body>
</html>
";

/// One collection's outcome, shared by the scrapes that waited for it.
struct Flight {
    running: bool,
    /// Collections finished.
    finished: u64,
    /// Scrapes waiting for the collection under way.
    waiting: usize,
    /// The last collection's bytes, kept only until its waiters took them.
    last: Option<Arc<Vec<u8>>>,
}

/// One vSphere host (with its section's credentials) being scraped.
struct Target {
    agent: Arc<Agent>,
    section: Section,
    keeper: perf::Keeper,
    flight: Mutex<Flight>,
    done: Condvar,
    last_used: Mutex<Instant>,
    scrapes: AtomicU64,
    shared: AtomicU64,
    failures: AtomicU64,
}

/// The exporter: its configuration and the hosts it serves.
pub struct Exporter {
    config: Config,
    targets: Mutex<HashMap<(String, String), Arc<Target>>>,
}

impl Exporter {
    /// An exporter for `config`; logs a warning per section for the
    /// vmware_exporter options it does not implement.
    pub fn new(config: Config) -> Exporter {
        for section in config.sections() {
            for option in section.unsupported() {
                log::warn!(
                    "section {}: {option} is not supported by vpoller-exporter; its labels and metrics are left out",
                    section.name
                );
            }
        }
        Exporter {
            config,
            targets: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one HTTP request.
    pub fn handle(&self, request: &Request) -> Response {
        match request.path.trim_end_matches('/') {
            "" => Response {
                status: 200,
                content_type: "text/html; charset=UTF-8",
                body: Arc::new(INDEX.as_bytes().to_vec()),
            },
            "/healthz" => Response::text(200, "Server is UP"),
            path if path == "/metrics" || path.starts_with("/metrics/") => self.metrics(request),
            _ => Response {
                status: 404,
                content_type: "text/html; charset=utf-8",
                body: Arc::new(NOT_FOUND.as_bytes().to_vec()),
            },
        }
    }

    fn metrics(&self, request: &Request) -> Response {
        let asked = request.param("section").unwrap_or("default");
        let section = self.config.section(asked);
        if section.name != asked {
            log::info!("{asked} is not a valid section, using default");
        }
        let host = section
            .vsphere_host
            .clone()
            .filter(|host| !host.is_empty())
            .or_else(|| {
                request
                    .param("target")
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            })
            .or_else(|| {
                request
                    .param("vsphere_host")
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            });
        let Some(host) = host else {
            log::info!("No vsphere_host or target defined");
            return Response::text(500, "No vsphere_host or target defined!\n");
        };
        let timeout = request
            .header("x-prometheus-scrape-timeout-seconds")
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(|seconds| Duration::from_secs_f64(seconds.min(3600.0)).saturating_sub(SEND_MARGIN))
            .map(|timeout| timeout.max(Duration::from_millis(500)))
            .unwrap_or(DEFAULT_SCRAPE_TIMEOUT);
        let target = match self.target(section, &host) {
            Ok(target) => target,
            Err(error) => {
                log::error!("vSphere host {host}: {error}");
                return Response::text(
                    500,
                    &format!("# Collection failed: {}\n", one_line(&error.to_string())),
                );
            }
        };
        let body = target.scrape(timeout);
        Response {
            status: 200,
            content_type: text::CONTENT_TYPE,
            body,
        }
    }

    /// The target for `host` with `section`'s credentials, made on first use.
    fn target(&self, section: &Section, host: &str) -> Result<Arc<Target>, Error> {
        let key = (section.name.clone(), host.to_owned());
        // Targets dropped here stop their mirrors and log out, which may
        // take seconds: in a thread of their own, not in this scrape.
        let mut dropped = Retired(Vec::new());
        let mut targets = self.targets.locked();
        let expired: Vec<_> = targets
            .iter()
            .filter(|(_, target)| target.last_used.locked().elapsed() >= TARGET_IDLE)
            .map(|(key, _)| key.clone())
            .collect();
        for expired in expired {
            dropped.0.extend(targets.remove(&expired));
        }
        if let Some(target) = targets.get(&key) {
            *target.last_used.locked() = Instant::now();
            return Ok(target.clone());
        }
        let (Some(user), Some(password)) = (&section.vsphere_user, &section.vsphere_password)
        else {
            return Err(Error::InvalidArgument(format!(
                "section {} has no vsphere_user or vsphere_password",
                section.name
            )));
        };
        if targets.len() >= MOST_TARGETS {
            let oldest = targets
                .iter()
                .min_by_key(|(_, target)| *target.last_used.locked())
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                dropped.0.extend(targets.remove(&oldest));
            }
        }
        let options = AgentOptions {
            verification: section.verification(),
            ..AgentOptions::default()
        };
        let agent = Arc::new(Agent::with_options(host, user, password, options)?);
        let target = Arc::new(Target {
            agent,
            section: section.clone(),
            keeper: perf::Keeper::default(),
            flight: Mutex::new(Flight {
                running: false,
                finished: 0,
                waiting: 0,
                last: None,
            }),
            done: Condvar::new(),
            last_used: Mutex::new(Instant::now()),
            scrapes: AtomicU64::new(0),
            shared: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        targets.insert(key, target.clone());
        Ok(target)
    }
}

/// Targets taken out of service, stopped in a thread of their own when
/// dropped.
struct Retired(Vec<Arc<Target>>);

impl Drop for Retired {
    fn drop(&mut self) {
        let targets = std::mem::take(&mut self.0);
        if targets.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("vpoller-exporter-retire".into())
            .spawn(move || drop(targets));
        if let Err(error) = spawned {
            log::warn!("cannot start a thread to stop unused hosts: {error}");
        }
    }
}

/// What the exporter's own families say of one collection.
struct Scrape<'a> {
    up: bool,
    started: Instant,
    /// SOAP calls the collection made.
    calls: u64,
    objects: Option<&'a [(&'static str, usize)]>,
    samples_age: Option<Duration>,
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

impl Target {
    /// One scrape's answer: a collection of its own, or the one under way
    /// when it came (then the bytes are shared).
    fn scrape(&self, timeout: Duration) -> Arc<Vec<u8>> {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut flight = self.flight.locked();
        if flight.running {
            let awaited = flight.finished + 1;
            flight.waiting += 1;
            log::debug!(
                "a scrape of {} waits for the collection under way",
                self.agent.host()
            );
            while flight.finished < awaited {
                flight = self
                    .done
                    .wait(flight)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            flight.waiting -= 1;
            let last = if flight.waiting == 0 {
                flight.last.take()
            } else {
                flight.last.clone()
            };
            if let Some(last) = last {
                self.shared.fetch_add(1, Ordering::Relaxed);
                return last;
            }
            if flight.running {
                // Another collection started meanwhile: its own one.
                drop(flight);
                return self.scrape_again(timeout);
            }
        }
        flight.running = true;
        drop(flight);
        // The flag is cleared also when the collection panics, so that no
        // later scrape waits for good.
        struct Landing<'a>(&'a Target, Option<Arc<Vec<u8>>>);
        impl Drop for Landing<'_> {
            fn drop(&mut self) {
                let mut flight = self.0.flight.locked();
                flight.running = false;
                flight.finished += 1;
                flight.last = if flight.waiting > 0 {
                    self.1.take()
                } else {
                    None
                };
                self.0.done.notify_all();
            }
        }
        let mut landing = Landing(self, None);
        let body = Arc::new(self.collect(timeout));
        landing.1 = Some(body.clone());
        drop(landing);
        // The collection's trees and buffers are free now: give their pages
        // back rather than keep the largest scrape's size for good.
        crate::agent::release_free_memory();
        body
    }

    /// A scrape that waited for a collection that failed to leave its
    /// bytes (it panicked): counted once, collected anew.
    fn scrape_again(&self, timeout: Duration) -> Arc<Vec<u8>> {
        self.scrapes.fetch_sub(1, Ordering::Relaxed);
        self.scrape(timeout)
    }

    fn collect(&self, timeout: Duration) -> Vec<u8> {
        let started = Instant::now();
        let deadline = started + timeout;
        let collect_only = &self.section.collect_only;
        let calls_before = crate::vsphere::soap::calls_on_this_thread();
        let collected = collect::collect(&self.agent, collect_only, deadline);
        let calls = crate::vsphere::soap::calls_on_this_thread() - calls_before;
        let mut out = Vec::new();
        let mut samples_age = None;
        let error = match collected {
            Ok(collected) => {
                let size: usize = collected.families.iter().map(|f| f.text().len()).sum();
                out.reserve(size + size / 8 + 4096);
                for family in &collected.families {
                    family.write_to(&mut out);
                }
                self.keeper.want(
                    &self.agent,
                    collected
                        .perf_vms
                        .iter()
                        .map(|(vm, _)| vm.clone())
                        .collect(),
                    collected
                        .perf_hosts
                        .iter()
                        .map(|(host, _)| host.clone())
                        .collect(),
                );
                // The first scrape waits for the first sweep (within its
                // time); later ones take what the keeper has.
                let samples = self.keeper.samples(Some(deadline));
                if let Some(samples) = &samples {
                    samples_age = Some(samples.read_at.elapsed());
                }
                for family in collect::perf_families(&collected, collect_only, samples.as_deref()) {
                    family.write_to(&mut out);
                }
                let scrape = Scrape {
                    up: true,
                    started,
                    calls,
                    objects: Some(&collected.objects),
                    samples_age,
                };
                self.own_metrics(&mut out, &scrape);
                None
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                log::error!("collecting metrics from {}: {error}", self.agent.host());
                let scrape = Scrape {
                    up: false,
                    started,
                    calls,
                    objects: None,
                    samples_age: None,
                };
                self.own_metrics(&mut out, &scrape);
                Some(error)
            }
        };
        if let Some(error) = error {
            out.extend_from_slice(
                format!("# Collection failed: {}\n", one_line(&error.to_string())).as_bytes(),
            );
        }
        out
    }

    /// The exporter's own families.
    fn own_metrics(&self, out: &mut Vec<u8>, scrape: &Scrape<'_>) {
        let Scrape {
            up,
            started,
            calls,
            objects,
            samples_age,
        } = *scrape;
        let gauge = |name: &str, help: &str, value: f64| {
            let mut family = Family::new(name, help, Type::Gauge, &[]);
            family.sample(&[], value);
            family
        };
        let mut families = vec![
            gauge(
                "vpoller_exporter_up",
                "Whether this scrape read the vSphere host's metrics (1) or the host failed (0).",
                if up { 1.0 } else { 0.0 },
            ),
            gauge(
                "vpoller_exporter_scrape_duration_seconds",
                "How long collecting this scrape's metrics took.",
                started.elapsed().as_secs_f64(),
            ),
            gauge(
                "vpoller_exporter_scrape_soap_calls",
                "SOAP calls this scrape's collection made (0: answered from memory).",
                calls as f64,
            ),
        ];
        let mut objects_family = Family::new(
            "vpoller_exporter_objects",
            "Objects read by this scrape, by managed type.",
            Type::Gauge,
            &["kind"],
        );
        for (kind, count) in objects.unwrap_or_default() {
            objects_family.sample(&[kind], *count as f64);
        }
        families.push(objects_family);
        let status = self.agent.mirror_status();
        let in_sync = status.get("state").and_then(Value::as_str) == Some("in sync");
        families.push(gauge(
            "vpoller_exporter_mirror_in_sync",
            "Whether the mirror of the vSphere host is in sync (its update stream alive).",
            if in_sync { 1.0 } else { 0.0 },
        ));
        for (field, name, help) in [
            (
                "objects",
                "vpoller_exporter_mirror_objects",
                "Objects held by the mirror.",
            ),
            (
                "values",
                "vpoller_exporter_mirror_values",
                "Property values held by the mirror.",
            ),
            (
                "last_update_age_s",
                "vpoller_exporter_mirror_last_update_age_seconds",
                "Seconds since the mirror's update stream last answered.",
            ),
        ] {
            if let Some(value) = status.get(field).and_then(Value::as_f64) {
                families.push(gauge(name, help, value));
            }
        }
        let mut updates = Family::new(
            "vpoller_exporter_mirror_updates_applied_total",
            "Changes the mirror applied from the vSphere host's update stream.",
            Type::Counter,
            &[],
        );
        updates.sample(
            &[],
            status
                .get("updates_applied")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        );
        families.push(updates);
        let mut calls = Family::new(
            "vpoller_exporter_soap_calls_total",
            "SOAP calls made to the vSphere host, by method.",
            Type::Counter,
            &["method"],
        );
        if let Some(Value::Object(by_method)) = status.get("soap_calls") {
            for (method, count) in by_method {
                calls.sample(&[method], count.as_f64().unwrap_or(0.0));
            }
        }
        families.push(calls);
        if let Some(ok) = self.keeper.last_sweep_ok() {
            families.push(gauge(
                "vpoller_exporter_perf_sweep_ok",
                "Whether the last background read of the performance counters read them all.",
                if ok { 1.0 } else { 0.0 },
            ));
        }
        if let Some(age) = samples_age {
            families.push(gauge(
                "vpoller_exporter_perf_samples_age_seconds",
                "Seconds since the performance samples served were read.",
                age.as_secs_f64(),
            ));
        }
        for (name, help, value) in [
            (
                "vpoller_exporter_scrapes_total",
                "Scrapes of this vSphere host.",
                self.scrapes.load(Ordering::Relaxed),
            ),
            (
                "vpoller_exporter_scrapes_shared_total",
                "Scrapes answered with the collection of a scrape that overlapped them.",
                self.shared.load(Ordering::Relaxed),
            ),
            (
                "vpoller_exporter_scrape_failures_total",
                "Scrapes whose collection failed.",
                self.failures.load(Ordering::Relaxed),
            ),
        ] {
            let mut family = Family::new(name, help, Type::Counter, &[]);
            family.sample(&[], value as f64);
            families.push(family);
        }
        for family in &families {
            family.write_to(out);
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.keeper.stop();
    }
}
