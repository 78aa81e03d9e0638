//! A task request that passed the worker's checks, with readers for its
//! fields as py-vpoller reads them, and how a task ends when it does not
//! succeed. The task table and the task families both build on this module,
//! and it on neither.

use crate::agent::reply;
use crate::error::Error;
use serde_json::{Map, Value};
use std::time::Instant;

/// A task's message, checked.
pub(crate) struct Msg<'a> {
    pub fields: &'a Map<String, Value>,
    /// When the task must be done by, every call it makes included.
    pub deadline: Instant,
}

impl Msg<'_> {
    /// `name` as text (a number is written as Python would).
    pub fn name(&self) -> String {
        self.text("name").unwrap_or_default()
    }

    /// A field as text: strings as they are, numbers in their JSON form.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(if *flag { "True" } else { "False" }.to_owned()),
            _ => None,
        }
    }

    /// The `properties` the message asks for: a list of paths, or one path
    /// as a string; none when absent, null or empty.
    pub fn properties(&self) -> Vec<String> {
        match self.fields.get("properties") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(path)) if !path.is_empty() => vec![path.clone()],
            _ => Vec::new(),
        }
    }

    /// A field that py-vpoller treats as set only when truthy.
    pub fn truthy(&self, key: &str) -> Option<&Value> {
        self.fields.get(key).filter(|value| match value {
            Value::Null => false,
            Value::Bool(flag) => *flag,
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(fields) => !fields.is_empty(),
            Value::Number(number) => number.as_f64() != Some(0.0),
        })
    }
}

/// Why a task gives no success reply.
#[derive(Debug)]
pub(crate) enum TaskError {
    /// Answer with this failure reply, as py-vpoller's task does
    /// (`Cannot find object X`, `Unknown performance counter requested`, ...).
    Reply(Value),
    /// The task could not be done: the reply is `Task METHOD failed: REASON`.
    Failed(Error),
}

impl TaskError {
    /// The failure reply `{"success": 1, "msg": msg}`.
    pub fn refuse(msg: impl Into<String>) -> TaskError {
        TaskError::Reply(reply::failure(msg))
    }
}

impl From<Error> for TaskError {
    fn from(error: Error) -> TaskError {
        TaskError::Failed(error)
    }
}

/// What a task function returns.
pub(crate) type TaskResult<T> = Result<T, TaskError>;
