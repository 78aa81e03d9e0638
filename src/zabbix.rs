//! What the Zabbix loadable module (`bindings/zabbix`) needs from the
//! library, so that the module stays a thin C file: the vPoller request for
//! an item key's parameters, and the item's typed value (or "not
//! supported" with vPoller's message) from the reply.
//!
//! Item keys, as py-vpoller's module has them:
//! `vpoller[method, hostname, name, properties, key, username, password,
//! counter-name, instance, perf-interval]`; `vpoller.discovery[...]` takes
//! the same parameters and answers in low-level discovery form.

use crate::agent::reply;
use crate::helpers::{zabbix_outcome, ZabbixOutcome};
use serde_json::{Map, Value};

/// The request fields of the item key's parameters, in order.
const FIELDS: [&str; 10] = [
    "method",
    "hostname",
    "name",
    "properties",
    "key",
    "username",
    "password",
    "counter-name",
    "instance",
    "perf-interval",
];

/// The vPoller request (JSON text) for an item key's parameters. Empty
/// parameters are left out (never sent as text); `properties` is a comma
/// separated list; `max-sample` is 1, as py-vpoller's module sends it.
pub fn request(params: &[&str]) -> Result<String, String> {
    if params.len() > FIELDS.len() {
        return Err(format!(
            "too many parameters: {} (at most {})",
            params.len(),
            FIELDS.len()
        ));
    }
    let mut msg = Map::new();
    for (field, param) in FIELDS.iter().zip(params) {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let value = if *field == "properties" {
            Value::Array(
                param
                    .split(',')
                    .map(str::trim)
                    .filter(|property| !property.is_empty())
                    .map(|property| Value::String(property.to_owned()))
                    .collect(),
            )
        } else {
            Value::String(param.to_owned())
        };
        msg.insert((*field).to_owned(), value);
    }
    for required in ["method", "hostname"] {
        if !msg.contains_key(required) {
            return Err(format!("the {required} parameter is missing"));
        }
    }
    msg.insert("max-sample".into(), Value::from(1));
    Ok(reply::to_text(&Value::Object(msg)))
}

/// An item's value, typed as Zabbix stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemValue {
    /// A whole number from 0 up.
    Unsigned(u64),
    /// Any other number.
    Float(f64),
    /// Text: strings as they are, anything else as JSON.
    Text(String),
}

/// The value of the item that sent `request` and got `reply`, or the reason
/// it has none ("not supported" in Zabbix): vPoller's failure message, no
/// reply, no such property. With `discovery`, the result in low-level
/// discovery form.
pub fn item_value(request: &str, reply: &str, discovery: bool) -> Result<ItemValue, String> {
    let msg = serde_json::from_str::<Value>(request)
        .ok()
        .and_then(|value| value.as_object().cloned())
        .ok_or("the request is not a JSON object")?;
    let reply: Value = serde_json::from_str(reply)
        .map_err(|_| "vPoller's reply is not JSON (is a helper configured for it?)".to_string())?;
    match zabbix_outcome(&msg, &reply, discovery)? {
        ZabbixOutcome::Failure(text) | ZabbixOutcome::Unknown(text) => Err(text),
        ZabbixOutcome::Value(Value::Null) => Err("vPoller returned no value for this item".into()),
        ZabbixOutcome::Value(Value::Number(number)) => Ok(match number.as_u64() {
            Some(whole) => ItemValue::Unsigned(whole),
            None => ItemValue::Float(number.as_f64().unwrap_or(f64::NAN)),
        }),
        ZabbixOutcome::Value(Value::String(text)) => Ok(ItemValue::Text(text)),
        ZabbixOutcome::Value(other) => Ok(ItemValue::Text(reply::to_text(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_leave_out_empty_parameters() {
        assert_eq!(
            request(&[
                "vm.get",
                "vc01",
                "Zürich \"vm\"\\1",
                "name, runtime.powerState",
                "",
                ""
            ])
            .unwrap(),
            r#"{"method": "vm.get", "hostname": "vc01", "name": "Zürich \"vm\"\\1", "properties": ["name", "runtime.powerState"], "max-sample": 1}"#
        );
        let all = request(&[
            "vm.perf.metric.get",
            "vc01",
            "vm01",
            "",
            "k",
            "u",
            "p",
            "cpu.ready.millisecond.summation",
            "*",
            "Past day",
        ])
        .unwrap();
        assert!(all.contains(r#""counter-name": "cpu.ready.millisecond.summation", "instance": "*", "perf-interval": "Past day""#), "{all}");
        assert!(request(&["vm.get"]).is_err());
        assert!(request(&["", "vc01"]).is_err());
        assert!(request(&["a"; 11]).is_err());
    }

    #[test]
    fn values_are_typed() {
        let get = request(&[
            "vm.get",
            "vc01",
            "vm01",
            "summary.quickStats.overallCpuUsage",
        ])
        .unwrap();
        let reply = |value: &str| {
            format!(
                r#"{{"success": 0, "msg": "ok", "result": [{{"name": "vm01", "summary.quickStats.overallCpuUsage": {value}}}]}}"#
            )
        };
        assert_eq!(
            item_value(&get, &reply("67"), false),
            Ok(ItemValue::Unsigned(67))
        );
        assert_eq!(
            item_value(&get, &reply("-2"), false),
            Ok(ItemValue::Float(-2.0))
        );
        assert_eq!(
            item_value(&get, &reply("1.5"), false),
            Ok(ItemValue::Float(1.5))
        );
        assert_eq!(
            item_value(&get, &reply("\"poweredOn\""), false),
            Ok(ItemValue::Text("poweredOn".into()))
        );
        assert_eq!(
            item_value(&get, &reply("[1, 2]"), false),
            Ok(ItemValue::Text("[1, 2]".into()))
        );
        assert!(item_value(&get, &reply("null"), false).is_err());
        assert_eq!(
            item_value(
                &get,
                r#"{"success": 1, "msg": "Cannot find object vm01"}"#,
                false
            ),
            Err("Cannot find object vm01".into())
        );
        let discover = request(&["vm.discover", "vc01"]).unwrap();
        assert_eq!(
            item_value(
                &discover,
                r#"{"success": 0, "msg": "ok", "result": [{"name": "vm01"}]}"#,
                true
            ),
            Ok(ItemValue::Text(
                r#"{"data": [{"{#VSPHERE.VM.NAME}": "vm01"}]}"#.into()
            ))
        );
    }
}
