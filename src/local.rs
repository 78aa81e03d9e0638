//! A worker without the network: requests answered in the calling process
//! by the agents of the hosts in a registry, with the worker's replies
//! (`Unknown or missing agent name` for a host the registry lacks). For
//! callers that want no proxy or worker at all, such as the Zabbix module.

use crate::error::Error;
use crate::hosts::{Hosts, Routed};

pub use crate::hosts::{AgentSettings, MAX_MIRROR_IDLE_S, MAX_MIRROR_MAX_VALUES};

/// The hosts of one registry and their agents; shared by threads.
pub struct Local {
    hosts: Hosts,
}

impl Local {
    /// Opens the registry at `db` (vconnector's SQLite database). The
    /// agents have the agent's defaults (lookups cached for 300 s, the
    /// mirror on) but for a task's bound, `timeout_ms`;
    /// [`Local::set_settings`] changes them.
    pub fn open(db: &str, timeout_ms: u64) -> Result<Local, Error> {
        let settings = AgentSettings {
            timeout_ms: timeout_ms.max(1),
            ..AgentSettings::default()
        };
        Ok(Local {
            hosts: Hosts::open(db, settings)?,
        })
    }

    /// What every host's agent is given.
    pub fn settings(&self) -> AgentSettings {
        self.hosts.settings()
    }

    /// Gives every host's agent `settings`, from its next request on.
    pub fn set_settings(&self, settings: AgentSettings) -> Result<(), Error> {
        self.hosts.set_settings(settings)
    }

    /// Runs a task request (JSON text with `hostname`) and returns the reply
    /// text a worker would send.
    pub fn run(&self, msg: &str) -> String {
        let reply = match self.hosts.route(msg.as_bytes()) {
            Ok(Routed { msg, agent, .. }) => agent.answer_value(&msg).into_text(),
            Err(refusal) => refusal,
        };
        self.hosts.release_retired();
        reply
    }
}
