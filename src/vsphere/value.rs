//! vSphere property values as JSON, one documented rendering for every type:
//!
//! - scalars: numbers as JSON numbers, booleans as `true`/`false`, enums and
//!   text as strings; `xsd:dateTime` as the server's ISO 8601 text;
//!   binary as the server's base64 text;
//! - a managed object reference as `"Type:id"`, e.g. `"HostSystem:host-21"`;
//! - a data object as a JSON object of the fields the server sent, in the
//!   server's order (unset fields are absent, never `null`);
//! - an array (an `ArrayOfX` value, or a field the type table declares as an
//!   array) as a JSON array, also with one element or none.

use crate::vsphere::typetable::{self, FieldType, Kind};
use crate::vsphere::xml::{Node, XsiType};
use serde_json::{Map, Value};

/// Converts a property value element (`<val xsi:type="...">`) to JSON.
pub(crate) fn property_value(node: &Node) -> Value {
    convert(node, None)
}

/// The `"Type:id"` rendering of a managed object reference element.
pub(crate) fn reference(node: &Node) -> String {
    format!(
        "{}:{}",
        node.type_attr.as_deref().unwrap_or("ManagedObject"),
        node.text
    )
}

/// Converts `node`, whose declared type (if the context tells it) is `declared`.
pub(crate) fn convert(node: &Node, declared: Option<Kind>) -> Value {
    match node.xsi_type.as_ref() {
        Some(XsiType::Schema(local)) => scalar(&node.text, typetable::schema_kind(local)),
        Some(XsiType::Vim(name)) => {
            if let Some(element) = name.strip_prefix("ArrayOf") {
                let element_kind = typetable::array_element_kind(element);
                Value::Array(
                    node.children
                        .iter()
                        .map(|child| convert(child, Some(element_kind)))
                        .collect(),
                )
            } else if name == "ManagedObjectReference" {
                Value::String(reference(node))
            } else {
                by_kind(node, typetable::data_kind(name))
            }
        }
        None => by_kind(node, declared.unwrap_or(Kind::Any)),
    }
}

fn by_kind(node: &Node, kind: Kind) -> Value {
    match kind {
        Kind::Reference => Value::String(reference(node)),
        Kind::Data(type_name) => data_object(node, Some(type_name)),
        // Without a declared type, an element with children is still an object.
        Kind::Any | Kind::String if !node.children.is_empty() => data_object(node, None),
        scalar_kind => scalar(&node.text, scalar_kind),
    }
}

fn scalar(text: &str, kind: Kind) -> Value {
    match kind {
        Kind::Integer => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        Kind::Float => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        Kind::Boolean => match text.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        _ => Value::String(text.to_owned()),
    }
}

/// A data object: its fields, grouped by name in first-seen order; a field
/// the table declares as an array (or that repeats) becomes a JSON array.
fn data_object(node: &Node, type_name: Option<&str>) -> Value {
    // The element's own xsi:type (a subtype) wins over the declared type.
    let type_name = match node.xsi_type.as_ref() {
        Some(XsiType::Vim(name)) if typetable::is_data_type(name) => Some(name.as_str()),
        _ => type_name,
    };
    let mut fields = Map::new();
    for child in &node.children {
        let declared: Option<FieldType> =
            type_name.and_then(|name| typetable::field_type(name, &child.name));
        let value = convert(child, declared.map(|field| field.kind));
        let is_array = declared.is_some_and(|field| field.array);
        match fields.get_mut(&child.name) {
            Some(Value::Array(items)) if is_array => items.push(value),
            Some(existing) => {
                // A repeated field the table does not know as an array.
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None if is_array => {
                fields.insert(child.name.clone(), Value::Array(vec![value]));
            }
            None => {
                fields.insert(child.name.clone(), value);
            }
        }
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::xml::parse_body;
    use serde_json::json;

    fn val(xml: &str) -> Value {
        let envelope = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"
            xmlns:xsd="http://www.w3.org/2001/XMLSchema"
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e:Body><R xmlns="urn:vim25">{xml}</R></e:Body></e:Envelope>"#
        );
        let body = parse_body(envelope.as_bytes()).unwrap();
        property_value(&body.children[0])
    }

    #[test]
    fn scalars_and_references() {
        assert_eq!(val(r#"<val xsi:type="xsd:int">42</val>"#), json!(42));
        assert_eq!(val(r#"<val xsi:type="xsd:long">-7</val>"#), json!(-7));
        assert_eq!(
            val(r#"<val xsi:type="xsd:boolean">true</val>"#),
            json!(true)
        );
        assert_eq!(val(r#"<val xsi:type="xsd:double">1.5</val>"#), json!(1.5));
        assert_eq!(
            val(r#"<val xsi:type="xsd:dateTime">2020-01-01T10:11:12.5Z</val>"#),
            json!("2020-01-01T10:11:12.5Z")
        );
        assert_eq!(
            val(r#"<val xsi:type="VirtualMachinePowerState">poweredOn</val>"#),
            json!("poweredOn")
        );
        assert_eq!(
            val(r#"<val type="HostSystem" xsi:type="ManagedObjectReference">host-21</val>"#),
            json!("HostSystem:host-21")
        );
    }

    #[test]
    fn arrays_stay_arrays_with_one_element() {
        assert_eq!(
            val(
                r#"<val xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="Datastore">ds-1</ManagedObjectReference></val>"#
            ),
            json!(["Datastore:ds-1"])
        );
        assert_eq!(val(r#"<val xsi:type="ArrayOfString"></val>"#), json!([]));
        // guest.net: `ipAddress` is string[] in GuestNicInfo, one element here.
        assert_eq!(
            val(
                r#"<val xsi:type="ArrayOfGuestNicInfo"><GuestNicInfo><network>VM Network</network><ipAddress>10.0.0.1</ipAddress><connected>true</connected><deviceConfigId>4000</deviceConfigId></GuestNicInfo></val>"#
            ),
            json!([{"network": "VM Network", "ipAddress": ["10.0.0.1"], "connected": true, "deviceConfigId": 4000}])
        );
    }

    #[test]
    fn nested_data_objects_and_subtypes() {
        assert_eq!(
            val(
                r#"<val xsi:type="VirtualMachineSummary"><vm type="VirtualMachine">vm-1</vm><quickStats><overallCpuUsage>12</overallCpuUsage><guestHeartbeatStatus>green</guestHeartbeatStatus></quickStats><overallStatus>green</overallStatus></val>"#
            ),
            json!({"vm": "VirtualMachine:vm-1", "quickStats": {"overallCpuUsage": 12, "guestHeartbeatStatus": "green"}, "overallStatus": "green"})
        );
        // A VirtualDisk inside ArrayOfVirtualDevice: its own fields are typed too.
        assert_eq!(
            val(
                r#"<val xsi:type="ArrayOfVirtualDevice"><VirtualDevice xsi:type="VirtualDisk"><key>2000</key><capacityInKB>1024</capacityInKB><iofilter>f1</iofilter></VirtualDevice></val>"#
            ),
            json!([{"key": 2000, "capacityInKB": 1024, "iofilter": ["f1"]}])
        );
        // anyType fields carry xsi:type.
        assert_eq!(
            val(
                r#"<val xsi:type="ArrayOfOptionValue"><OptionValue><key>a</key><value xsi:type="xsd:int">3</value></OptionValue></val>"#
            ),
            json!([{"key": "a", "value": 3}])
        );
    }

    #[test]
    fn unknown_types_and_bad_numbers_do_not_fail() {
        assert_eq!(
            val(r#"<val xsi:type="SomeFutureType"><a>1</a><a>2</a></val>"#),
            json!({"a": ["1", "2"]})
        );
        assert_eq!(val(r#"<val xsi:type="xsd:int">many</val>"#), json!("many"));
    }
}
