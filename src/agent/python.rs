//! How py-vpoller's replies spell values, since its tasks hand Python
//! objects to `str()`, `getattr()` and `repr()`: the agent writes the same
//! text from JSON values and the server's ISO 8601 times.

use crate::vsphere::typetable;
use serde_json::Value;

/// What py-vpoller puts where an object lacks a requested attribute.
const NULL_TEXT: &str = "(null)";

/// Python's `getattr(item, field, "(null)")` on the pyVmomi object of data
/// type `type_name` that `item` renders: the value when set; an unset field
/// of the type is `None`, or `[]` for an array; a field the type does not
/// have is "(null)".
pub(crate) fn attribute(item: &Value, type_name: &str, field: &str) -> Value {
    if let Some(value) = item.get(field) {
        return value.clone();
    }
    match typetable::field_type(type_name, field) {
        Some(declared) if declared.array => Value::Array(Vec::new()),
        Some(_) => Value::Null,
        None => NULL_TEXT.into(),
    }
}

/// Python's `str()` of a datetime that pyVmomi parsed from ISO 8601 text:
/// `2020-01-01T10:11:12.5Z` becomes `2020-01-01 10:11:12.500000+00:00`.
pub(crate) fn datetime(iso: &str) -> String {
    let Some((date, rest)) = iso.split_once('T') else {
        return iso.to_owned();
    };
    // `find` and `rfind` give char boundaries: the split cannot panic.
    let zone_at = rest
        .find(['Z', '+'])
        .or_else(|| rest.rfind('-'))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let zone = match zone {
        "" | "Z" => "+00:00",
        other => other,
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut micros: String = fraction.chars().take(6).collect();
    while micros.len() < 6 {
        micros.push('0');
    }
    if micros.chars().all(|digit| digit == '0') {
        format!("{date} {clock}{zone}")
    } else {
        format!("{date} {clock}.{micros}{zone}")
    }
}

/// Python's `str()` of a value pyVmomi would hold; `is_time` when the
/// value is a time.
pub(crate) fn str_of(value: Option<&Value>, is_time: bool) -> String {
    match value {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(text)) if is_time => datetime(text),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(flag)) => if *flag { "True" } else { "False" }.into(),
        Some(other) => other.to_string(),
    }
}

/// Python's `repr` of the type of a JSON value, as the worker reports it.
pub(crate) fn class(value: &Value) -> &'static str {
    match value {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(number) if number.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datetimes_read_as_python_prints_them() {
        assert_eq!(
            datetime("2020-01-01T10:11:12.123456Z"),
            "2020-01-01 10:11:12.123456+00:00"
        );
        assert_eq!(
            datetime("2020-01-01T10:11:12.5Z"),
            "2020-01-01 10:11:12.500000+00:00"
        );
        assert_eq!(
            datetime("2020-01-01T10:11:12Z"),
            "2020-01-01 10:11:12+00:00"
        );
        assert_eq!(
            datetime("2020-01-01T10:11:12.000+02:00"),
            "2020-01-01 10:11:12+02:00"
        );
        assert_eq!(
            datetime("2020-01-01T10:11:12-05:00"),
            "2020-01-01 10:11:12-05:00"
        );
    }

    #[test]
    fn values_read_as_python_prints_them() {
        assert_eq!(str_of(None, false), "None");
        assert_eq!(str_of(Some(&json!(true)), false), "True");
        assert_eq!(str_of(Some(&json!(12)), false), "12");
        assert_eq!(class(&json!(1.5)), "<class 'float'>");
        assert_eq!(class(&json!({})), "<class 'dict'>");
        assert_eq!(
            attribute(&json!({}), "AboutInfo", "nothing"),
            json!("(null)")
        );
        assert_eq!(attribute(&json!({}), "AboutInfo", "version"), Value::Null);
    }
}
