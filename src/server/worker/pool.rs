//! One worker loop's threads: `threads` tasks at once and one thread more,
//! so that one is always left to read while `threads` tasks run.
//!
//! There is no reading thread handing requests to task threads: whichever
//! thread is idle reads the next request, and when another idle thread can
//! take over reading, the one that read it runs it and writes its reply
//! itself. A request is thus read, run and answered on one thread, without
//! a hand-off between threads on its way (two thread wake-ups fewer per
//! request). What a thread does next is decided in one place,
//! [`State::next_step`].

use super::job::{self, Job};
use super::link::{Link, Writer, READ_WAIT};
use super::schedule::Schedule;
use super::Worker;
use crate::error::Error;
use crate::server::Stop;
use crate::sync::{self, Lock};
use crate::transport::curve::Security;
use crate::transport::Dialer;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// What a thread of the pool does next.
enum Step {
    /// Read the next request (this thread holds the connection meanwhile).
    Read(Box<Link>),
    /// Run a job; wake an idle thread first to take over reading.
    Run { job: Job, wake_reader: bool },
    /// Answer a job with a failure: the worker is stopping and it could not
    /// finish in time.
    Refuse(Job),
    /// Nothing to do: wait to be woken (or for the timeout, while stopping).
    Wait(Option<Duration>),
    /// The loop is over.
    Exit,
}

/// The pool's shared state.
struct State {
    schedule: Schedule,
    /// The connection when no thread is reading it.
    link: Option<Box<Link>>,
    /// Threads waiting to be woken.
    idle: usize,
    /// Set once stopping: jobs in hand are finished until then, nothing
    /// more is read.
    deadline: Option<Instant>,
    /// How long one task may take.
    task_timeout: Duration,
}

impl State {
    /// The rule of the pool:
    ///
    /// - while open, a queued job is run by a thread when someone else
    ///   reads or an idle thread can take over reading (which is woken);
    ///   otherwise the thread reads itself, and the job waits for the next
    ///   thread to come free (there is always one more thread than
    ///   `threads`, so reading never waits for a task);
    /// - while stopping, a queued job is run if it can finish by the
    ///   deadline and answered with a failure otherwise; a thread leaves
    ///   when nothing runs or waits, or the deadline has passed.
    fn next_step(&mut self, now: Instant) -> Step {
        let reading = self.link.is_none();
        match self.deadline {
            None => {
                if reading || self.idle > 0 {
                    if let Some(job) = self.schedule.next() {
                        return Step::Run {
                            job,
                            wake_reader: !reading,
                        };
                    }
                }
                match self.link.take() {
                    Some(link) => Step::Read(link),
                    None => Step::Wait(None),
                }
            }
            Some(deadline) => {
                let overdue = now > deadline;
                if let Some(job) = self.schedule.next() {
                    if overdue || now + self.task_timeout > deadline {
                        return Step::Refuse(job);
                    }
                    return Step::Run {
                        job,
                        wake_reader: false,
                    };
                }
                if overdue || !self.schedule.busy() {
                    Step::Exit
                } else {
                    Step::Wait(Some(READ_WAIT))
                }
            }
        }
    }
}

struct Pool<'a> {
    worker: &'a Worker,
    state: Mutex<State>,
    wake: Condvar,
    writer: Mutex<Writer>,
    /// CURVE: replies are sealed in the writers' turn (plain ones are
    /// encoded before it).
    sealed: bool,
    stop: &'a Stop,
    /// How long requests in hand may take once stopping.
    drain_limit: Duration,
}

/// How one loop serves.
pub(super) struct Settings<'a> {
    /// The proxy's endpoint, for logs.
    pub endpoint: &'a str,
    /// How to reach it.
    pub dialer: Dialer,
    /// NULL, or CURVE with the backend's key.
    pub security: Security,
    /// Tasks at once.
    pub threads: usize,
    /// Of those, at most this many on one vSphere host.
    pub per_host: usize,
    /// How long one task may take.
    pub task_timeout: Duration,
}

/// Serves the proxy with `threads` tasks at once (at most `per_host` on
/// one vSphere host) until `stop` is set, then finishes the requests in
/// hand: for at most one task's timeout and a second, so that stopping
/// takes no longer.
pub(super) fn run(worker: &Worker, settings: Settings<'_>, stop: &Stop) -> Result<(), Error> {
    let threads = settings.threads;
    let sealed = !matches!(settings.security, Security::Null);
    let pool = Pool {
        worker,
        state: Mutex::new(State {
            schedule: Schedule::new(settings.per_host),
            link: Some(Box::new(Link::new(
                settings.endpoint,
                settings.dialer,
                settings.security,
            ))),
            idle: 0,
            deadline: None,
            task_timeout: settings.task_timeout,
        }),
        wake: Condvar::new(),
        writer: Mutex::new(Writer::default()),
        sealed,
        stop,
        drain_limit: settings.task_timeout + Duration::from_secs(1),
    };
    std::thread::scope(|scope| {
        let pool = &pool;
        for index in 0..=threads {
            let spawned = std::thread::Builder::new()
                .name(format!("vpoller-task-{index}"))
                .spawn_scoped(scope, move || {
                    // Every step catches its own panics; should one escape
                    // regardless, the thread goes on rather than leave the
                    // pool a thread short, up to a few times, after which
                    // the worker stops (to be started again by its
                    // supervisor) rather than spin.
                    for escaped in 1.. {
                        if catch_unwind(AssertUnwindSafe(|| pool.work())).is_ok() {
                            return;
                        }
                        log::error!("internal error in a task thread ({escaped})");
                        if escaped == 3 {
                            pool.stop.set();
                            return;
                        }
                    }
                });
            if let Err(error) = spawned {
                stop.set();
                pool.wake.notify_all();
                return Err(Error::Internal(format!(
                    "cannot start a task thread: {error}"
                )));
            }
        }
        Ok(())
    })?;
    Writer::close(&pool.writer);
    Ok(())
}

impl Pool<'_> {
    /// One thread of the pool, until the loop is over.
    fn work(&self) {
        let mut state = self.state.locked();
        loop {
            match state.next_step(Instant::now()) {
                Step::Run { job, wake_reader } => {
                    if wake_reader {
                        self.wake.notify_one();
                    }
                    drop(state);
                    let host = job.host.clone();
                    let (reply, agent) = job::perform(self.worker, job);
                    Writer::send(&self.writer, self.sealed, &reply);
                    // Logouts, if any, now that the reply is out.
                    drop(agent);
                    self.worker.hosts.release_retired();
                    state = self.state.locked();
                    state.schedule.done(&host);
                    if state.deadline.is_some() {
                        self.wake.notify_all();
                    }
                }
                Step::Refuse(job) => {
                    drop(state);
                    let host = job.host.clone();
                    let msg = format!("Task {} failed: the worker is stopping", job.method());
                    Writer::send(&self.writer, self.sealed, &job.refused(&msg));
                    state = self.state.locked();
                    state.schedule.done(&host);
                    self.wake.notify_all();
                }
                Step::Read(mut link) => {
                    drop(state);
                    let job = self.read(&mut link);
                    state = self.state.locked();
                    state.link = Some(link);
                    if let Some(job) = job {
                        if let Err(refusal) = state.schedule.queue(job) {
                            drop(state);
                            Writer::send(&self.writer, self.sealed, &refusal);
                            state = self.state.locked();
                        }
                    }
                    if self.stop.is_set() && state.deadline.is_none() {
                        state.deadline = Some(Instant::now() + self.drain_limit);
                        self.wake.notify_all();
                    }
                }
                Step::Wait(timeout) => {
                    state.idle += 1;
                    state = sync::wait(&self.wake, state, timeout);
                    state.idle -= 1;
                }
                Step::Exit => {
                    self.wake.notify_all();
                    return;
                }
            }
        }
    }

    /// Reads the next request and routes it; a request refused at once is
    /// answered here. A panic here is a bug (routing catches its own, as a
    /// failure reply): the request is lost, the connection made anew, and
    /// the pool goes on.
    fn read(&self, link: &mut Link) -> Option<Job> {
        catch_unwind(AssertUnwindSafe(|| {
            let frames = link.next_message(&self.writer)?;
            let (envelope, body) = job::split_request(frames)?;
            match job::job_for(self.worker, envelope, &body) {
                Ok(job) => Some(job),
                Err(refusal) => {
                    Writer::send(&self.writer, self.sealed, &refusal);
                    None
                }
            }
        }))
        .unwrap_or_else(|_| {
            link.disconnect(&self.writer, "internal error while reading a request");
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(jobs: &[&str], reading: bool, idle: usize, deadline: Option<Instant>) -> State {
        let mut schedule = Schedule::new(1);
        for host in jobs {
            assert!(schedule.queue(Job::for_test(host)).is_ok());
        }
        let dialer = Dialer::new("tcp://127.0.0.1:9").unwrap();
        State {
            schedule,
            link: (!reading)
                .then(|| Box::new(Link::new("tcp://127.0.0.1:9", dialer, Security::Null))),
            idle,
            deadline,
            task_timeout: Duration::from_secs(10),
        }
    }

    fn step(state: &mut State) -> &'static str {
        match state.next_step(Instant::now()) {
            Step::Read(_) => "read",
            Step::Run {
                wake_reader: true, ..
            } => "run, wake a reader",
            Step::Run { .. } => "run",
            Step::Wait(None) => "wait",
            Step::Wait(Some(_)) => "wait a while",
            Step::Refuse(_) => "refuse",
            Step::Exit => "exit",
        }
    }

    #[test]
    fn the_rule_of_the_pool() {
        // Open: someone else reads, so a queued job is run.
        assert_eq!(step(&mut state(&["a"], true, 0, None)), "run");
        // Nobody reads and nobody could take over: read; the job waits.
        assert_eq!(step(&mut state(&["a"], false, 0, None)), "read");
        // Nobody reads but an idle thread can take over: run, wake it.
        assert_eq!(
            step(&mut state(&["a"], false, 1, None)),
            "run, wake a reader"
        );
        // Nothing queued: read when nobody does, else wait.
        assert_eq!(step(&mut state(&[], false, 3, None)), "read");
        assert_eq!(step(&mut state(&[], true, 3, None)), "wait");
        // A host at its limit (per_host 1 here) leaves its next job waiting.
        let mut busy = state(&["a", "a"], true, 0, None);
        assert_eq!(step(&mut busy), "run");
        assert_eq!(step(&mut busy), "wait");
        // Stopping: finish what is queued, then leave; never read.
        let later = Some(Instant::now() + Duration::from_secs(60));
        let mut stopping = state(&["a"], false, 0, later);
        assert_eq!(step(&mut stopping), "run");
        assert_eq!(step(&mut stopping), "wait a while");
        stopping.schedule.done("a");
        assert_eq!(step(&mut stopping), "exit");
        // A job that could not finish before the deadline is refused.
        let soon = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(step(&mut state(&["a"], false, 0, soon)), "refuse");
        // Past the deadline: what is queued is refused, then leave.
        let past = Some(Instant::now() - Duration::from_secs(1));
        let mut late = state(&["a"], false, 0, past);
        assert_eq!(step(&mut late), "refuse");
        late.schedule.done("a");
        assert_eq!(step(&mut late), "exit");
    }
}
