//! py-vpoller's result helpers, which a request names in `helper` and the
//! worker applies to the task's reply before sending it:
//!
//! - `vpoller.helpers.zabbix`: one property value as JSON text, a result
//!   list in Zabbix low-level discovery form, a process count, or on failure
//!   the bare `msg` text;
//! - `vpoller.helpers.czabbix`: the same with a trailing NUL byte, for C
//!   clients;
//! - `vpoller.helpers.cclient`: the reply as JSON with non-ASCII characters
//!   escaped, and a trailing NUL byte;
//! - `vpoller.helpers.csvhelper`: the result list as CSV (on failure the reply
//!   as indented JSON), as py-vpoller's helper meant to (it works on Python 2
//!   only).

use crate::agent::{self, reply, ZabbixForm};
use serde_json::{Map, Value};

/// Zabbix item values and low-level discovery.
pub const ZABBIX: &str = "vpoller.helpers.zabbix";
/// The Zabbix helper's output, NUL-terminated for C clients.
pub const CZABBIX: &str = "vpoller.helpers.czabbix";
/// The reply as ASCII JSON, NUL-terminated for C clients.
pub const CCLIENT: &str = "vpoller.helpers.cclient";
/// The result as CSV.
pub const CSV: &str = "vpoller.helpers.csvhelper";

/// Whether this worker has the helper called `name`.
pub fn known(name: &str) -> bool {
    matches!(name, ZABBIX | CZABBIX | CCLIENT | CSV)
}

/// Applies helper `name` to `reply` (the task's reply to `msg`). `Err` with
/// the reason when the helper cannot handle this reply (py-vpoller's worker
/// then fails to send anything sensible).
pub fn apply(name: &str, msg: &Map<String, Value>, reply: &Value) -> Result<String, String> {
    #[cfg(test)]
    crate::test_hooks::panic_at("helper", &Value::Object(msg.clone()));
    match name {
        ZABBIX => zabbix(msg, reply),
        CZABBIX => zabbix(msg, reply).map(|mut text| {
            text.push('\0');
            text
        }),
        CCLIENT => {
            let mut text = ascii_json(reply);
            text.push('\0');
            Ok(text)
        }
        CSV => Ok(csv(reply)),
        other => Err(format!("no helper {other}")),
    }
}

/// What the Zabbix helper makes of a reply.
pub(crate) enum ZabbixOutcome {
    /// The item's value (one property, discovery data, a count).
    Value(Value),
    /// vPoller's failure message.
    Failure(String),
    /// A method the helper has no form for: its message.
    Unknown(String),
}

fn zabbix(msg: &Map<String, Value>, reply: &Value) -> Result<String, String> {
    Ok(match zabbix_outcome(msg, reply, false)? {
        ZabbixOutcome::Value(value) => reply::to_text(&value),
        ZabbixOutcome::Failure(text) | ZabbixOutcome::Unknown(text) => text,
    })
}

/// The Zabbix helper's reading of `reply` to `msg`; with `discovery`, the
/// result list in discovery form whatever the method.
pub(crate) fn zabbix_outcome(
    msg: &Map<String, Value>,
    reply: &Value,
    as_discovery: bool,
) -> Result<ZabbixOutcome, String> {
    if reply.get("success").and_then(Value::as_i64) != Some(0) {
        // The bare message (which py-vpoller's helper hands to Zabbix as
        // the item's value).
        return Ok(ZabbixOutcome::Failure(match reply.get("msg") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => "None".into(),
        }));
    }
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let form = if as_discovery {
        Some(ZabbixForm::Discovery)
    } else {
        agent::zabbix_form(method)
    };
    let Some(form) = form else {
        return Ok(ZabbixOutcome::Unknown(format!(
            "[zbx-helper]: Do not know how to process {method} method"
        )));
    };
    let result = reply.get("result").unwrap_or(&Value::Null);
    let first_property = || {
        msg.get("properties")
            .and_then(|properties| properties.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{method}: the request names no properties"))
    };
    let items = |list: &Value, what: &str| -> Result<Vec<Value>, String> {
        list.as_array()
            .cloned()
            .ok_or_else(|| format!("{method}: {what} is not a list"))
    };
    let value = match form {
        ZabbixForm::Item => {
            let property = first_property()?;
            let last = items(result, "the result")?
                .pop()
                .ok_or_else(|| format!("{method}: the result is empty"))?;
            last.get(property).cloned().unwrap_or(Value::Null)
        }
        ZabbixForm::Disk => {
            let property = first_property()?;
            result
                .get(0)
                .and_then(|first| first.get("disk"))
                .and_then(|disk| disk.get(property))
                .cloned()
                .unwrap_or(Value::Null)
        }
        ZabbixForm::Discovery => {
            let prefix = method
                .rsplit_once('.')
                .map(|(head, _)| head)
                .unwrap_or(method);
            discovery(&prefix.to_uppercase(), &items(result, "the result")?)
        }
        ZabbixForm::DiskDiscovery => {
            let disks = result
                .get(0)
                .and_then(|first| first.get("disk"))
                .unwrap_or(&Value::Null);
            discovery("VM", &items(disks, "the disks")?)
        }
        ZabbixForm::GuestNet => {
            let nets = result.get("net").unwrap_or(&Value::Null);
            discovery("VM", &items(nets, "the networks")?)
        }
        ZabbixForm::Processes => {
            let processes = items(result, "the result")?;
            let wanted = msg
                .get("key")
                .and_then(Value::as_str)
                .filter(|key| !key.is_empty());
            let count = processes
                .iter()
                .filter(|process| match wanted {
                    Some(key) => process
                        .get("cmdLine")
                        .and_then(Value::as_str)
                        .is_some_and(|line| line.contains(key)),
                    None => true,
                })
                .count();
            Value::from(count)
        }
    };
    Ok(ZabbixOutcome::Value(value))
}

/// `{"data": [{"{#VSPHERE.PREFIX.KEY}": value, ...}, ...]}`.
fn discovery(prefix: &str, items: &[Value]) -> Value {
    let data: Vec<Value> = items
        .iter()
        .map(|item| {
            let macros: Map<String, Value> = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| {
                    (
                        format!("{{#VSPHERE.{prefix}.{}}}", key.to_uppercase()),
                        value.clone(),
                    )
                })
                .collect();
            Value::Object(macros)
        })
        .collect();
    let mut wrapper = Map::new();
    wrapper.insert("data".into(), Value::Array(data));
    Value::Object(wrapper)
}

/// Python's `json.dumps(value)`: ", " and ": " separators, non-ASCII
/// characters as `\uXXXX` escapes (surrogate pairs beyond the BMP).
pub(crate) fn ascii_json(value: &Value) -> String {
    let text = reply::to_text(value);
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_ascii() {
            out.push(character);
        } else {
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The result list as CSV: a header of the first item's keys, sorted, and
/// a row per item ("None" for a missing field), `\r\n` line ends, fields
/// quoted when they need it. A failed reply: the reply as indented JSON.
fn csv(reply: &Value) -> String {
    let items = reply.get("result").and_then(Value::as_array);
    let (true, Some(items)) = (
        reply.get("success").and_then(Value::as_i64) == Some(0),
        items,
    ) else {
        return serde_json::to_string_pretty(reply).unwrap_or_default();
    };
    let Some(first) = items.first().and_then(Value::as_object) else {
        return String::new();
    };
    let mut headers: Vec<&String> = first.keys().collect();
    headers.sort();
    let mut out = String::new();
    let line = |fields: Vec<String>, out: &mut String| {
        let quoted: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&quoted.join(","));
        out.push_str("\r\n");
    };
    line(
        headers.iter().map(|header| (*header).clone()).collect(),
        &mut out,
    );
    for item in items {
        let fields = headers
            .iter()
            .map(|header| match item.get(header.as_str()) {
                None => "None".to_owned(),
                Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(Value::Bool(flag)) => if *flag { "True" } else { "False" }.to_owned(),
                Some(other) => reply::to_text(other),
            })
            .collect();
        line(fields, &mut out);
    }
    out
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn zabbix_forms() {
        let get =
            msg(json!({"method": "vm.get", "name": "vm01", "properties": ["runtime.powerState"]}));
        let reply = json!({"success": 0, "msg": "ok", "result": [{"name": "vm01", "runtime.powerState": "poweredOn"}]});
        assert_eq!(apply(ZABBIX, &get, &reply).unwrap(), "\"poweredOn\"");
        assert_eq!(apply(CZABBIX, &get, &reply).unwrap(), "\"poweredOn\"\0");
        let failed = json!({"success": 1, "msg": "Cannot find object vm01"});
        assert_eq!(
            apply(ZABBIX, &get, &failed).unwrap(),
            "Cannot find object vm01"
        );
        let discover = msg(json!({"method": "vm.discover"}));
        let found = json!({"success": 0, "msg": "ok", "result": [{"name": "Zürich"}]});
        assert_eq!(
            apply(ZABBIX, &discover, &found).unwrap(),
            r#"{"data": [{"{#VSPHERE.VM.NAME}": "Zürich"}]}"#
        );
        let processes = msg(json!({"method": "vm.process.get", "key": "sshd"}));
        let list = json!({"success": 0, "msg": "ok", "result": [{"cmdLine": "/usr/sbin/sshd -D"}, {"cmdLine": "init"}]});
        assert_eq!(apply(ZABBIX, &processes, &list).unwrap(), "1");
        let unknown = msg(json!({"method": "net.get"}));
        assert_eq!(
            apply(ZABBIX, &unknown, &found).unwrap(),
            "[zbx-helper]: Do not know how to process net.get method"
        );
        let no_properties = msg(json!({"method": "vm.get"}));
        assert!(apply(ZABBIX, &no_properties, &reply).is_err());
    }

    #[test]
    fn cclient_escapes_and_terminates() {
        let reply = json!({"success": 0, "msg": "ok", "result": [{"name": "Zürich 虚 😀"}]});
        assert_eq!(
            apply(CCLIENT, &Map::new(), &reply).unwrap(),
            "{\"success\": 0, \"msg\": \"ok\", \"result\": [{\"name\": \"Z\\u00fcrich \\u865a \\ud83d\\ude00\"}]}\0"
        );
    }

    #[test]
    fn csv_rows() {
        let reply = json!({"success": 0, "msg": "ok", "result": [
            {"name": "vm01", "cpu": 2, "note": "a, \"b\""}, {"name": "vm02"}]});
        assert_eq!(
            apply(CSV, &Map::new(), &reply).unwrap(),
            "cpu,name,note\r\n2,vm01,\"a, \"\"b\"\"\"\r\nNone,vm02,None\r\n"
        );
        assert!(apply(CSV, &Map::new(), &json!({"success": 1, "msg": "no"}))
            .unwrap()
            .contains("\"msg\": \"no\""));
        assert!(!known("vpoller.helpers.nope"));
    }
}
