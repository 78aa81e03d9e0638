//! A logged-in vSphere session: login on first use, the service content,
//! renewal when the server forgets the session (expiry, vCenter restart), and
//! logout when the connection is dropped.

use crate::error::{Error, VSphereKind};
use crate::sync::{Lock, Shared};
use crate::vsphere::liveness::{About, AboutInfo, FRESH};
use crate::vsphere::soap::{deadline_after, element, Endpoint, MoRef, Request, Transport};
use crate::vsphere::xml::{self, Document, Node};
use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The API version asked for before the server has told its own.
const BOOTSTRAP_API_VERSION: &str = "6.0";

/// One login: the cookie that carries it and what the server told about itself.
pub(crate) struct Session {
    /// Counts logins of this connection; a failed call names the session it used.
    pub epoch: u64,
    cookie: String,
    /// The `ServiceContent` data object.
    pub content: Node,
    pub api_version: String,
    /// The fork generation that logged in (only it may log out).
    generation: u64,
    /// Container views made in this session, by managed type: they follow
    /// inventory changes, so one per type serves every later request.
    pub views: Mutex<HashMap<String, MoRef>>,
}

impl Session {
    /// A managed object of the service content, e.g. `propertyCollector`.
    pub fn service(&self, name: &str) -> Result<MoRef, Error> {
        self.content
            .child(name)
            .and_then(MoRef::from_node)
            .ok_or_else(|| {
                Error::vsphere(
                    VSphereKind::Protocol,
                    format!("the vSphere host has no {name}"),
                )
            })
    }
}

/// A connection to one vSphere host, shared by threads.
pub(crate) struct Connection {
    transport: Transport,
    user: String,
    password: String,
    session: RwLock<Option<Arc<Session>>>,
    /// Held while logging in, so that threads that find the session gone
    /// log in once between them.
    login: Mutex<u64>,
    /// The host's `about`, and the call that asks for it afresh.
    about: About,
}

impl Connection {
    pub fn new(endpoint: Endpoint, user: &str, password: &str) -> Result<Connection, Error> {
        Ok(Connection {
            transport: Transport::new(endpoint)?,
            user: user.to_owned(),
            password: password.to_owned(),
            session: RwLock::new(None),
            login: Mutex::new(0),
            about: About::new(),
        })
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.transport.address()
    }

    /// The SOAP calls made so far, by method.
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.transport.calls()
    }

    /// The current session, logging in when there is none.
    pub fn session(&self, deadline: Instant) -> Result<Arc<Session>, Error> {
        if let Some(session) = self.current() {
            return Ok(session);
        }
        self.renew(None, deadline)
    }

    /// The session logged in now, if any.
    pub fn current(&self) -> Option<Arc<Session>> {
        self.session.read_locked().clone()
    }

    /// Logs in again unless another thread already replaced `stale`.
    fn renew(&self, stale: Option<u64>, deadline: Instant) -> Result<Arc<Session>, Error> {
        let mut logins = self.login.locked();
        if let Some(session) = self.current() {
            if Some(session.epoch) != stale {
                return Ok(session);
            }
        }
        *logins += 1;
        let session = Arc::new(self.log_in(*logins, deadline)?);
        *self.session.write_locked() = Some(session.clone());
        Ok(session)
    }

    /// The `ServiceContent` (no login needed), asked for in `api_version`;
    /// a session cookie the answer sets goes to `new_cookie`.
    fn service_content(
        &self,
        api_version: &str,
        new_cookie: Option<&Mutex<Option<String>>>,
        deadline: Instant,
    ) -> Result<Node, Error> {
        let instance = MoRef::new("ServiceInstance", "ServiceInstance");
        self.transport.call(
            &Request {
                method: "RetrieveServiceContent",
                this: &instance,
                args: "",
                api_version,
                cookie: None,
                new_cookie,
            },
            deadline,
            returnval,
        )
    }

    /// The host's `AboutInfo` as JSON, known to be current: logs in when
    /// not logged in, and asks the host again unless it answered a call
    /// within the last second (see [`About::get`]). Fails while the host
    /// is down.
    /// `liveness` is what another stream of the host's answers knows:
    /// alive (memory answers), down (the host is asked), or nothing.
    pub fn about(&self, liveness: Option<bool>, deadline: Instant) -> Result<AboutInfo, Error> {
        let session = self.session(deadline)?;
        self.about.get(
            liveness.unwrap_or_else(|| self.transport.answered_within(FRESH)),
            deadline,
            || self.service_content(&session.api_version, None, deadline),
            || self.transport.timed_out("RetrieveServiceContent"),
        )
    }

    fn log_in(&self, epoch: u64, deadline: Instant) -> Result<Session, Error> {
        let cookie_slot = Mutex::new(None);
        let content = self.service_content(BOOTSTRAP_API_VERSION, Some(&cookie_slot), deadline)?;
        let api_version = content
            .child("about")
            .and_then(|about| about.child_text("apiVersion"))
            .unwrap_or(BOOTSTRAP_API_VERSION)
            .to_owned();
        let session_manager = content
            .child("sessionManager")
            .and_then(MoRef::from_node)
            .ok_or_else(|| {
                Error::vsphere(
                    VSphereKind::Protocol,
                    format!("{} has no session manager", self.address()),
                )
            })?;
        let mut args = String::new();
        element(&mut args, "userName", &self.user);
        element(&mut args, "password", &self.password);
        let first_cookie = cookie_slot.locked().clone();
        let login = self.transport.call(
            &Request {
                method: "Login",
                this: &session_manager,
                args: &args,
                api_version: &api_version,
                cookie: first_cookie.as_deref(),
                new_cookie: Some(&cookie_slot),
            },
            deadline,
            |body| xml::parse_body(body).map(drop),
        );
        match login {
            Err(Error::VSphere {
                kind: VSphereKind::Fault { name, text },
                ..
            }) if name == "InvalidLogin" => {
                return Err(Error::vsphere(
                    VSphereKind::NotAuthenticated,
                    format!(
                        "login to {} as {:?} failed: {}",
                        self.address(),
                        self.user,
                        if text.is_empty() {
                            "wrong user name or password"
                        } else {
                            &text
                        }
                    ),
                ));
            }
            other => other?,
        }
        self.about.remember(&content);
        let cookie = crate::sync::into_inner(cookie_slot).ok_or_else(|| {
            Error::vsphere(
                VSphereKind::Protocol,
                format!("{} sent no session cookie", self.address()),
            )
        })?;
        Ok(Session {
            epoch,
            cookie,
            content,
            api_version,
            generation: crate::fork::generation(),
            views: Mutex::new(HashMap::new()),
        })
    }

    /// Logs in now (when not yet logged in) by `deadline`, so that a bad
    /// password or host shows at once.
    pub fn connect(&self, deadline: Instant) -> Result<(), Error> {
        self.session(deadline).map(drop)
    }

    /// Calls `method` on `this` (a service of the session, chosen by `target`)
    /// and hands the response body to `read`. A session the server no longer
    /// knows is renewed and the call made once more.
    pub fn invoke<T>(
        &self,
        method: &str,
        target: &dyn Fn(&Session) -> Result<MoRef, Error>,
        args: &dyn Fn(&Session) -> Result<String, Error>,
        deadline: Instant,
        read: &mut dyn FnMut(&mut dyn BufRead) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut session = self.session(deadline)?;
        let mut renewed = false;
        let mut rebuilt = 0;
        loop {
            let this = target(&session)?;
            let arguments = args(&session)?;
            // Building the arguments may itself have logged in again (a
            // container view made on the way found the session gone): build
            // them anew for the new session, whose objects they must name.
            if let Some(current) = self.current() {
                if current.epoch != session.epoch && rebuilt < 2 {
                    rebuilt += 1;
                    session = current;
                    continue;
                }
            }
            let outcome = self.transport.call(
                &Request {
                    method,
                    this: &this,
                    args: &arguments,
                    api_version: &session.api_version,
                    cookie: Some(&session.cookie),
                    new_cookie: None,
                },
                deadline,
                |body| read(body),
            );
            match outcome {
                Err(error)
                    if error.vsphere_kind() == Some(&VSphereKind::NotAuthenticated) && !renewed =>
                {
                    renewed = true;
                    session = self.renew(Some(session.epoch), deadline)?;
                }
                other => return other,
            }
        }
    }

    /// Calls `method` and returns its whole `returnval` (None when the call
    /// returns nothing).
    pub fn call(
        &self,
        method: &str,
        target: &dyn Fn(&Session) -> Result<MoRef, Error>,
        args: &dyn Fn(&Session) -> Result<String, Error>,
        deadline: Instant,
    ) -> Result<Vec<Node>, Error> {
        self.invoke(method, target, args, deadline, &mut |body| {
            let mut document = Document::new(body);
            document.enter_response()?;
            let mut values = Vec::new();
            while let Some(node) = document.next_child()? {
                values.push(node);
            }
            Ok(values)
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Sessions are a limited resource on vCenter: give ours back. Not from
        // a forked child, whose session is its parent's too.
        let Some(session) = self.current() else {
            return;
        };
        if session.generation != crate::fork::generation() {
            return;
        }
        let Ok(session_manager) = session.service("sessionManager") else {
            return;
        };
        let _ = self.transport.call(
            &Request {
                method: "Logout",
                this: &session_manager,
                args: "",
                api_version: &session.api_version,
                cookie: Some(&session.cookie),
                new_cookie: None,
            },
            deadline_after(Duration::from_secs(2)),
            |body| xml::parse_body(body).map(drop),
        );
    }
}

/// Reads a response whose `returnval` is wanted whole.
fn returnval(body: &mut dyn BufRead) -> Result<Node, Error> {
    let response = xml::parse_body(body)?;
    response
        .children
        .into_iter()
        .find(|child| child.name == "returnval")
        .ok_or_else(|| Error::vsphere(VSphereKind::Protocol, "the response has no returnval"))
}
