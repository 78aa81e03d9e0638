//! The audited edge between C and Rust: every raw pointer conversion, the
//! panic boundary, strings handed to C, and the thread-local last error.
//! All of the C ABI's `unsafe` lives in this file.

use crate::capi::{vpoller_agent, vpoller_client, vpoller_local, VPOLLER_ERR_INTERNAL, VPOLLER_OK};
use crate::error::Error;
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// Runs `body`, turning a panic into `on_panic(error)` so that no unwind
/// crosses into C. The error is recorded as this thread's last error first.
pub(crate) fn guard<T>(on_panic: impl FnOnce(&Error) -> T, body: impl FnOnce() -> T) -> T {
    // The closures only touch data owned by the call or protected by locks
    // that recover from poisoning, so observing them after a panic is sound.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let error = Error::Internal(panic_message(payload.as_ref()));
            set_last_error(VPOLLER_ERR_INTERNAL, &error);
            on_panic(&error)
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    match crate::error::panic_text(payload) {
        Some(text) => format!("panic: {text}"),
        None => String::from("panic"),
    }
}

/// Borrows a C string argument as bytes; NULL is an [`Error::InvalidArgument`]
/// naming the parameter.
pub(crate) fn bytes_arg<'a>(text: *const c_char, name: &str) -> Result<&'a [u8], Error> {
    if text.is_null() {
        return Err(Error::InvalidArgument(format!("{name} is NULL")));
    }
    // SAFETY: the header requires a non-NULL argument to point to a
    // NUL-terminated string that stays valid and unchanged during the call.
    Ok(unsafe { CStr::from_ptr(text) }.to_bytes())
}

/// Borrows a C string argument as UTF-8 text.
pub(crate) fn str_arg<'a>(text: *const c_char, name: &str) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes_arg(text, name)?)
        .map_err(|error| Error::InvalidArgument(format!("{name} is not valid UTF-8 ({error})")))
}

/// Borrows an array of `count` C strings as UTF-8 texts; a NULL entry is
/// the empty text, a NULL array with a non-zero count an error.
pub(crate) fn str_array<'a>(
    items: *const *const c_char,
    count: c_int,
) -> Result<Vec<&'a str>, Error> {
    let count = usize::try_from(count)
        .map_err(|_| Error::InvalidArgument("the count is negative".into()))?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if items.is_null() {
        return Err(Error::InvalidArgument("the array is NULL".into()));
    }
    // SAFETY: the header requires `items` to point to `count` readable
    // pointers, each NULL or a NUL-terminated string valid during the call.
    let pointers = unsafe { std::slice::from_raw_parts(items, count) };
    pointers
        .iter()
        .map(|item| {
            if item.is_null() {
                Ok("")
            } else {
                str_arg(*item, "parameter")
            }
        })
        .collect()
}

/// Borrows the local worker behind a handle; NULL is an [`Error::InvalidArgument`].
pub(crate) fn local_arg<'a>(local: *const vpoller_local) -> Result<&'a vpoller_local, Error> {
    // SAFETY: a non-NULL handle comes from `vpoller_local_new` and, as the
    // header requires, has not been passed to `vpoller_local_free`.
    unsafe { local.as_ref() }.ok_or_else(|| Error::InvalidArgument("local is NULL".into()))
}

/// Frees a handle from `vpoller_local_new` (NULL: nothing).
pub(crate) fn local_free(local: *mut vpoller_local) {
    if !local.is_null() {
        // SAFETY: the handle came from Box::into_raw in `vpoller_local_new`
        // and is freed once, as the header requires.
        drop(unsafe { Box::from_raw(local) });
    }
}

/// Borrows the client behind a handle; NULL is an [`Error::InvalidArgument`].
pub(crate) fn client_arg<'a>(client: *const vpoller_client) -> Result<&'a vpoller_client, Error> {
    // SAFETY: a non-NULL handle comes from `vpoller_client_new` and, as the
    // header requires, has not been passed to `vpoller_client_free`.
    unsafe { client.as_ref() }.ok_or_else(|| Error::InvalidArgument("client is NULL".into()))
}

/// Hands a client to C as an owned handle.
pub(crate) fn client_into_raw(client: vpoller_client) -> *mut vpoller_client {
    Box::into_raw(Box::new(client))
}

/// Takes back and drops a handle from [`client_into_raw`]; NULL does nothing.
pub(crate) fn client_free(client: *mut vpoller_client) {
    if !client.is_null() {
        // SAFETY: the handle came from `client_into_raw` (Box::into_raw) and the
        // header makes freeing it the caller's last use of it.
        drop(unsafe { Box::from_raw(client) });
    }
}

/// Borrows the agent behind a handle; NULL is an [`Error::InvalidArgument`].
pub(crate) fn agent_arg<'a>(agent: *const vpoller_agent) -> Result<&'a vpoller_agent, Error> {
    // SAFETY: a non-NULL handle comes from `vpoller_agent_new` and, as the
    // header requires, has not been passed to `vpoller_agent_free`.
    unsafe { agent.as_ref() }.ok_or_else(|| Error::InvalidArgument("agent is NULL".into()))
}

/// Hands an agent to C as an owned handle.
pub(crate) fn agent_into_raw(agent: vpoller_agent) -> *mut vpoller_agent {
    Box::into_raw(Box::new(agent))
}

/// Takes back and drops a handle from [`agent_into_raw`]; NULL does nothing.
pub(crate) fn agent_free(agent: *mut vpoller_agent) {
    if !agent.is_null() {
        // SAFETY: the handle came from `agent_into_raw` (Box::into_raw) and the
        // header makes freeing it the caller's last use of it.
        drop(unsafe { Box::from_raw(agent) });
    }
}

/// Copies `text` into a new NUL-terminated buffer from `malloc`, the one
/// allocator every language can reach; NULL if memory is exhausted.
/// `text` must not hold NUL bytes (replies and error results never do).
pub(crate) fn malloc_string(text: &str) -> *mut c_char {
    debug_assert!(!text.as_bytes().contains(&0));
    let length = text.len();
    let Some(size) = length.checked_add(1) else {
        return ptr::null_mut();
    };
    // SAFETY: malloc may be called with any size; a NULL result is handled.
    let buffer = unsafe { libc::malloc(size) }.cast::<u8>();
    if buffer.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `buffer` has room for `length + 1` bytes and cannot overlap
    // `text`, which Rust owns.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), buffer, length);
        *buffer.add(length) = 0;
    }
    buffer.cast::<c_char>()
}

/// Frees a buffer from [`malloc_string`]; NULL does nothing.
pub(crate) fn free_string(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: the header allows only strings this library returned, which
        // all come from `malloc_string`, and each only once.
        unsafe { libc::free(text.cast()) };
    }
}

/// Stores `*out = value`; NULL `out` does nothing.
pub(crate) fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: the header requires a non-NULL `out` to point to writable storage for a T.
        unsafe { out.write(value) };
    }
}

struct LastError {
    status: c_int,
    message: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        status: VPOLLER_OK,
        message: CString::default(),
    });
}

/// Records the outcome of a call that succeeded.
pub(crate) fn clear_last_error() {
    // `try_with`: during thread teardown the slot may be gone; nothing to record then.
    let _ = LAST_ERROR.try_with(|last| {
        let mut last = last.borrow_mut();
        if last.status != VPOLLER_OK {
            last.status = VPOLLER_OK;
            last.message = CString::default();
        }
    });
}

/// Records a failure as this thread's last error.
pub(crate) fn set_last_error(status: c_int, error: &Error) {
    let message = CString::new(error.to_string().replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|last| {
        *last.borrow_mut() = LastError { status, message };
    });
}

/// This thread's last status.
pub(crate) fn last_status() -> c_int {
    LAST_ERROR
        .try_with(|last| last.borrow().status)
        .unwrap_or(VPOLLER_OK)
}

/// This thread's last error message; valid until the next call into the
/// library from this thread.
pub(crate) fn last_message() -> *const c_char {
    LAST_ERROR
        .try_with(|last| last.borrow().message.as_ptr())
        .unwrap_or_else(|_| c"".as_ptr())
}
