//! One request's way through a worker: its envelope taken off, routed to
//! its host's agent (or refused at once, as py-vpoller's worker refuses),
//! run, passed through its helper, and its reply's frames made.
//!
//! Nothing here may take the worker down: a panic while routing or running
//! a request becomes a failure reply to that request, and is logged.

use super::Worker;
use crate::agent::reply::{failure, to_text, Answer};
use crate::agent::Agent;
use crate::helpers;
use crate::hosts::Routed;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// One request handed to a thread.
pub(super) struct Job {
    envelope: Vec<Vec<u8>>,
    msg: Value,
    pub(super) host: String,
    agent: Arc<Agent>,
    queued: Instant,
}

impl Job {
    /// A job for `host` with no request behind it, for the pool's tests.
    #[cfg(test)]
    pub(super) fn for_test(host: &str) -> Job {
        let options = crate::AgentOptions {
            verification: crate::Verification::Insecure,
            ..crate::AgentOptions::default()
        };
        Job {
            envelope: Vec::new(),
            msg: Value::Null,
            host: host.to_owned(),
            agent: Arc::new(Agent::with_options("127.0.0.1:9", "u", "p", options).unwrap()),
            queued: Instant::now(),
        }
    }

    /// The request's method.
    pub(super) fn method(&self) -> &str {
        self.msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The frames of a failure reply `msg` to this job, which is not run.
    pub(super) fn refused(self, msg: &str) -> Vec<Vec<u8>> {
        let mut frames = self.envelope;
        frames.push(to_text(&failure(msg)).into_bytes());
        frames
    }
}

/// A request's frames as py-vpoller's worker takes them (client id, empty
/// frame, request): the envelope and the request, or `None` (logged) for
/// any other shape, which gets no reply.
pub(super) fn split_request(mut frames: Vec<Vec<u8>>) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    if frames.len() < 3 || !frames[frames.len() - 2].is_empty() {
        log::warn!(
            "dropped a message of {} frames that is not client id, empty frame, request",
            frames.len()
        );
        return None;
    }
    let body = frames.pop().unwrap_or_default();
    Some((frames, body))
}

/// A request routed to a job, or the reply's frames when it is refused at
/// once (py-vpoller's worker checks, an unknown host, a host whose registry
/// row cannot be served, a panic while routing).
pub(super) fn job_for(
    worker: &Worker,
    envelope: Vec<Vec<u8>>,
    body: &[u8],
) -> Result<Job, Vec<Vec<u8>>> {
    let routed =
        catch_unwind(AssertUnwindSafe(|| worker.hosts.route(body))).unwrap_or_else(|panic| {
            let msg = serde_json::from_slice::<Value>(body).unwrap_or_default();
            let method = msg.get("method").and_then(Value::as_str);
            Err(internal_failure(method, panic.as_ref()))
        });
    match routed {
        Ok(Routed { msg, host, agent }) => Ok(Job {
            envelope,
            msg,
            host,
            agent,
            queued: Instant::now(),
        }),
        Err(refusal) => {
            let mut frames = envelope;
            frames.push(refusal.into_bytes());
            Err(frames)
        }
    }
}

/// Runs a job on the calling thread: the reply's frames (envelope, text),
/// with the host's counters updated, and the job's agent (to be let go of
/// after the reply is out: the last reference to an agent logs out). A
/// panic in the task or its helper is a failure reply.
pub(super) fn perform(worker: &Worker, job: Job) -> (Vec<Vec<u8>>, Arc<Agent>) {
    let (text, failed) = catch_unwind(AssertUnwindSafe(|| answer(&job, &worker.helpers)))
        .unwrap_or_else(|panic| {
            let method = job.msg.get("method").and_then(Value::as_str);
            let text = internal_failure(method, panic.as_ref());
            (text, Some("internal error in the worker".to_owned()))
        });
    worker.record(&job.host, failed, job.queued.elapsed());
    let mut frames = job.envelope;
    frames.push(text.into_bytes());
    (frames, job.agent)
}

/// The reply text for a job, through its helper when it names one this
/// worker has (an unknown helper is ignored, as py-vpoller ignores it), and
/// the task's failure message if it failed.
fn answer(job: &Job, helpers_allowed: &[String]) -> (String, Option<String>) {
    let helper = job
        .msg
        .get("helper")
        .and_then(Value::as_str)
        .filter(|name| {
            helpers::known(name) && helpers_allowed.iter().any(|allowed| allowed == name)
        });
    let failure_of = |reply: &Value| {
        (reply.get("success").and_then(Value::as_i64) != Some(0)).then(|| {
            reply
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned()
        })
    };
    match helper {
        // Replies written as text are successful lists; the others say.
        None => match job.agent.answer_value(&job.msg) {
            Answer::Json(reply) => (to_text(&reply), failure_of(&reply)),
            Answer::Text(text) => (text, None),
        },
        Some(name) => {
            let reply = job.agent.run_value(&job.msg);
            let fields = job.msg.as_object().cloned().unwrap_or_default();
            match helpers::apply(name, &fields, &reply) {
                Ok(text) => (text, failure_of(&reply)),
                Err(reason) => {
                    let msg = format!("Cannot send result: helper {name} failed: {reason}");
                    (to_text(&failure(msg.clone())), Some(msg))
                }
            }
        }
    }
}

/// The failure reply for a request whose handling panicked (a bug), logged.
fn internal_failure(method: Option<&str>, panic: &(dyn std::any::Any + Send)) -> String {
    let what = crate::error::panic_text(panic).unwrap_or("a panic");
    let msg = match method {
        Some(method) => format!("Task {method} failed: internal error in the worker ({what})"),
        None => format!("Internal error in the worker ({what})"),
    };
    log::error!("{msg}");
    to_text(&failure(msg))
}
