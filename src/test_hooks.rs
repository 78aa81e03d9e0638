//! Faults the library's own tests can cause on purpose, to prove that the
//! servers survive them. Compiled only into those tests.

use crate::sync::Lock;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// Panics when the request `msg` asks for a panic at `place` (its
/// `"test.panic"` field names the place: `reader`, `task`, `helper`).
pub(crate) fn panic_at(place: &str, msg: &Value) {
    if msg.get("test.panic").and_then(Value::as_str) == Some(place) {
        panic!("a test panic in the {place}");
    }
}

static FAILING_LOOPS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Makes loop `index` of the worker whose management endpoint is `mgmt`
/// fail at its start.
pub(crate) fn fail_loop(mgmt: &str, index: usize) {
    FAILING_LOOPS
        .locked()
        .get_or_insert_with(HashMap::new)
        .insert(mgmt.to_owned(), index);
}

/// Whether loop `index` of that worker is to fail.
pub(crate) fn loop_fails(mgmt: &str, index: usize) -> bool {
    FAILING_LOOPS
        .locked()
        .as_ref()
        .and_then(|failing| failing.get(mgmt))
        == Some(&index)
}
