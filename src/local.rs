//! A worker without the network: requests answered in the calling process
//! by the agents of the hosts in a registry, with the worker's replies
//! (`Unknown or missing agent name` for a host the registry lacks). For
//! callers that want no proxy or worker at all, such as the Zabbix module.

use crate::error::Error;
use crate::hosts::{AgentSettings, Hosts, Routed};

/// The hosts of one registry and their agents; shared by threads.
pub struct Local {
    hosts: Hosts,
}

impl Local {
    /// Opens the registry at `db` (vconnector's SQLite database). Lookups
    /// are cached for 300 s; a task may take 60 s (`timeout_ms` changes it).
    pub fn open(db: &str, timeout_ms: u64) -> Result<Local, Error> {
        let settings = AgentSettings {
            timeout_ms: timeout_ms.max(1),
            cache_ttl_s: crate::agent::DEFAULT_CACHE_TTL_S,
        };
        Ok(Local {
            hosts: Hosts::open(db, settings)?,
        })
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
