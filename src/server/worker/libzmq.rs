//! A worker loop over a libzmq DEALER socket, for proxy endpoints the
//! built-in ZMTP connection does not take (`ipc://`, interface names).
//!
//! The loop alone touches the socket: it reads requests, queues them in
//! the [`Schedule`], sends jobs to the pool's threads over a channel and
//! takes their replies back over an in-process socket.

use super::{job_for, perform, split_request, Hosts, Job, Schedule};
use crate::error::Error;
use crate::server::config::Config;
use crate::server::{open_socket, Attach, Stop};
use crate::sync::Lock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

static LOOP_IDS: AtomicUsize = AtomicUsize::new(0);

struct Loop<'a> {
    hosts: &'a Hosts,
    threads: usize,
    dealer: zmq::Socket,
    replies: zmq::Socket,
    jobs: mpsc::Sender<Job>,
    schedule: Schedule,
}

/// Serves until `stop` is set, then finishes the requests in hand.
pub(super) fn run(
    config: &Config,
    hosts: &Hosts,
    context: &zmq::Context,
    stop: &Stop,
) -> Result<(), Error> {
    let dealer = open_socket(
        context,
        zmq::DEALER,
        2000,
        &config.worker.proxy,
        Attach::Connect,
    )?;
    let endpoint = format!(
        "inproc://vpoller-worker-replies-{}",
        LOOP_IDS.fetch_add(1, Ordering::SeqCst)
    );
    let replies = context.socket(zmq::PULL)?;
    replies.bind(&endpoint)?;
    let (jobs, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let helpers_allowed = config.worker.helpers.as_slice();
    std::thread::scope(|scope| -> Result<(), Error> {
        for _ in 0..config.worker.threads {
            let push = context.socket(zmq::PUSH)?;
            push.connect(&endpoint)?;
            let receiver = receiver.clone();
            scope.spawn(move || loop {
                let job = {
                    let receiver = receiver.locked();
                    receiver.recv()
                };
                let Ok(job) = job else {
                    return;
                };
                let mut frames = vec![job.host.clone().into_bytes()];
                frames.extend(perform(hosts, job, helpers_allowed));
                if push.send_multipart(frames, 0).is_err() {
                    return;
                }
            });
        }
        let mut state = Loop {
            hosts,
            threads: config.worker.threads,
            dealer,
            replies,
            jobs,
            schedule: Schedule::new(config.worker.per_host),
        };
        let drain_limit = Duration::from_millis(config.worker.timeout_ms) + Duration::from_secs(1);
        let outcome = serve(&mut state, drain_limit, stop);
        // Closing the channel ends the threads once they are idle.
        drop(state.jobs);
        outcome
    })
}

impl Loop<'_> {
    fn send(&self, frames: Vec<Vec<u8>>) {
        if let Err(error) = self.dealer.send_multipart(frames, 0) {
            log::warn!("cannot send a reply: {error}");
        }
    }

    /// Reads every request waiting on the DEALER socket.
    fn take_requests(&mut self) -> Result<(), Error> {
        loop {
            let frames = match self.dealer.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(zmq::Error::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            let Some((envelope, body)) = split_request(frames) else {
                continue;
            };
            match job_for(self.hosts, envelope, &body) {
                Ok(job) => {
                    if let Err(refusal) = self.schedule.queue(job) {
                        self.send(refusal);
                    }
                }
                Err(refusal) => self.send(refusal),
            }
        }
    }

    /// Hands waiting jobs to idle threads.
    fn dispatch(&mut self) {
        while self.schedule.total_running < self.threads {
            let Some(job) = self.schedule.next() else {
                return;
            };
            if self.jobs.send(job).is_err() {
                log::error!("the task threads are gone");
                return;
            }
        }
    }

    /// Sends the replies the threads finished.
    fn take_replies(&mut self) -> Result<(), Error> {
        loop {
            let mut frames = match self.replies.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(zmq::Error::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            let host = String::from_utf8_lossy(&frames.remove(0)).into_owned();
            self.schedule.done(&host);
            self.send(frames);
        }
    }
}

fn serve(state: &mut Loop<'_>, drain_limit: Duration, stop: &Stop) -> Result<(), Error> {
    let mut draining_since: Option<Instant> = None;
    loop {
        if stop.is_set() && draining_since.is_none() {
            draining_since = Some(Instant::now());
        }
        if let Some(since) = draining_since {
            // Finish the requests in hand, bounded by one task's timeout.
            if !state.schedule.busy() || since.elapsed() > drain_limit {
                return Ok(());
            }
        }
        let accepting = draining_since.is_none();
        let mut items = [
            state.replies.as_poll_item(zmq::POLLIN),
            state.dealer.as_poll_item(if accepting {
                zmq::POLLIN
            } else {
                zmq::PollEvents::empty()
            }),
        ];
        match zmq::poll(&mut items, 250) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(error) => return Err(error.into()),
        }
        let (replies_ready, requests_ready) = (items[0].is_readable(), items[1].is_readable());
        if replies_ready {
            state.take_replies()?;
        }
        if requests_ready && accepting {
            state.take_requests()?;
        }
        state.dispatch();
    }
}
