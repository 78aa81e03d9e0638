//! Replies in the text form py-vpoller's worker sends: `json.dumps` with its
//! default `", "` and `": "` separators and `ensure_ascii=False` (non-ASCII
//! characters raw), keys in the order the task built them.

use serde_json::ser::Formatter;
use serde_json::{json, Map, Value};
use std::io;

/// A reply under construction: an ordered JSON object.
pub(crate) type Reply = Map<String, Value>;

/// `{"success": 0, "msg": msg, "result": result}`.
pub(crate) fn success(msg: &str, result: Value) -> Value {
    json!({"success": 0, "msg": msg, "result": result})
}

/// `{"msg": msg, "success": 0, "result": result}`, the key order of the
/// tasks that build their reply that way (`about`, `session.get`, ...).
pub(crate) fn success_msg_first(msg: &str, result: Value) -> Value {
    json!({"msg": msg, "success": 0, "result": result})
}

/// `{"success": 1, "msg": msg}`.
pub(crate) fn failure(msg: impl Into<String>) -> Value {
    json!({"success": 1, "msg": msg.into()})
}

/// Serialises `value` as Python's `json.dumps(value, ensure_ascii=False)`.
pub(crate) fn to_text(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonStyle);
    // Writing a Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(value, &mut serializer);
    String::from_utf8(out).unwrap_or_default()
}

struct PythonStyle;

impl Formatter for PythonStyle {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_pythons() {
        let value = json!({"success": 0, "msg": "ok", "result": [{"name": "Zürich \"x\"", "n": [1, 2.5, true, null]}]});
        assert_eq!(
            to_text(&value),
            r#"{"success": 0, "msg": "ok", "result": [{"name": "Zürich \"x\"", "n": [1, 2.5, true, null]}]}"#
        );
        assert_eq!(to_text(&json!({})), "{}");
        assert_eq!(to_text(&json!([])), "[]");
    }
}
