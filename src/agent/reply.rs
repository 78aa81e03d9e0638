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

/// A task's reply: a JSON value, or text already in the worker's form (the
/// large results, written object by object as they arrive).
pub(crate) enum Answer {
    Json(Value),
    Text(String),
}

impl Answer {
    /// The reply text.
    pub fn into_text(self) -> String {
        match self {
            Answer::Json(value) => to_text(&value),
            Answer::Text(text) => text,
        }
    }

    /// The reply as a JSON value.
    pub fn into_value(self) -> Value {
        match self {
            Answer::Json(value) => value,
            // The agent wrote the text itself: it parses.
            Answer::Text(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

/// Serialises `value` as Python's `json.dumps(value, ensure_ascii=False)`.
pub(crate) fn to_text(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    // serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `value` to `out` as [`to_text`] writes it.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    let mut serializer = serde_json::Serializer::with_formatter(out, PythonStyle);
    // Writing a Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(value, &mut serializer);
}

/// Builds `{"success": 0, "msg": msg, "result": [...]}` as text, one result
/// item at a time, so that a large result is never held twice.
pub(crate) struct ListWriter {
    out: Vec<u8>,
    empty: bool,
}

impl ListWriter {
    pub fn new(msg: &str) -> ListWriter {
        let mut out = b"{\"success\": 0, \"msg\": ".to_vec();
        write_value(&mut out, &Value::String(msg.to_owned()));
        out.extend_from_slice(b", \"result\": [");
        ListWriter { out, empty: true }
    }

    pub fn push(&mut self, item: &Value) {
        if !std::mem::take(&mut self.empty) {
            self.out.extend_from_slice(b", ");
        }
        write_value(&mut self.out, item);
    }

    pub fn finish(mut self) -> String {
        self.out.extend_from_slice(b"]}");
        self.out.shrink_to_fit();
        // Only serde_json's UTF-8 and ASCII were written.
        String::from_utf8(self.out).unwrap_or_default()
    }
}

struct PythonStyle;

/// `", "` before every item but the first, as `json.dumps` separates.
fn separate<W: ?Sized + io::Write>(writer: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

impl Formatter for PythonStyle {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separate(writer, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separate(writer, first)
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

    #[test]
    fn a_list_written_item_by_item_reads_as_the_whole() {
        let items = [json!({"name": "vm-1", "n": 1}), json!({"name": "Zürich"})];
        let mut writer = ListWriter::new("Successfully discovered objects");
        for item in &items {
            writer.push(item);
        }
        assert_eq!(
            writer.finish(),
            to_text(&success("Successfully discovered objects", json!(items)))
        );
        assert_eq!(
            ListWriter::new("m").finish(),
            to_text(&success("m", json!([])))
        );
    }
}
