//! `control-server` behind a C ABI, for daemons written in C or C++: the header is
//! `include/ctl_server.h`, which documents every function; `docs/daemon-authors.md` ("From C or
//! C++") says how to build and link.
//!
//! Every exported function catches panics (`catch_unwind`) and reports them as
//! [`CTL_EPANIC`] with a message, as does every trampoline that calls back into C: no Rust panic
//! crosses the boundary. Errors are negative errno-like codes, with a message for the calling
//! thread in [`ctl_last_error`].
//!
//! The daemon's callbacks block (they are C): they run on the tokio blocking pool of the
//! server's own thread (`spawn_blocking`), never on the thread that serves the socket, so a
//! slow reload does not stall `status`.
//!
//! # Layout
//!
//! - errors: `Fail`, the thread's last message, `ffi` (the guard every export runs in);
//! - the builder and the server (`ctl_builder_*`, `ctl_server_*`);
//! - the handles the builder gives out: log files, the work tracker, counters and gauges;
//! - status fields (`ctl_status_*`) and commands.
#![allow(non_camel_case_types)]
// Every export checks its pointers for NULL; what they point at is the caller's promise, said in
// the header, which is where a C author reads the safety contract.
#![allow(clippy::missing_safety_doc)]

use control_server::api::text::chain as error_chain;
use control_server::api::{Access, DrainReply, OpError, ResumeReply};
use control_server::{
    BackgroundServer, Builder, Counter, Counters, DaemonStatus, DynamicCommand, Gauge, LogFile,
    OpContext, Reloaded, Server, WorkGuard, WorkTracker,
};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
#[cfg(test)]
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Success.
pub const CTL_OK: c_int = 0;
/// An argument is NULL, not UTF-8, not valid JSON, or out of range (`-EINVAL`).
pub const CTL_EINVAL: c_int = -22;
/// A file or the socket could not be opened or bound (`-EIO`).
pub const CTL_EIO: c_int = -5;
/// The builder was already started, or something was given twice (`-EALREADY`).
pub const CTL_ESTATE: c_int = -114;
/// A work token that is not in flight (`-ENOENT`).
pub const CTL_ENOENT: c_int = -2;
/// A bug inside the library, caught before it crossed into C (`-ENOTRECOVERABLE`).
pub const CTL_EPANIC: c_int = -131;

/// Access levels of commands, as the header numbers them.
pub const CTL_READ: c_int = 0;
/// See [`CTL_READ`].
pub const CTL_OPERATE: c_int = 1;
/// See [`CTL_READ`].
pub const CTL_ADMIN: c_int = 2;

/// Room the library gives a reload or check callback for its message, NUL included.
pub const CTL_MSG_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Errors

/// Why an export failed: its return code and the message [`ctl_last_error`] gives.
struct Fail {
    code: c_int,
    message: String,
}

fn fail(code: c_int, message: impl Into<String>) -> Fail {
    Fail {
        code,
        message: message.into(),
    }
}

thread_local! {
    /// The message of the last call on this thread that failed.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    // A NUL inside would end the C string early: cut there rather than lose all of it.
    let message = match CString::new(message) {
        Ok(message) => message,
        Err(err) => {
            let end = err.nul_position();
            let mut bytes = err.into_vec();
            bytes.truncate(end);
            CString::new(bytes).unwrap_or_default()
        }
    };
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("internal error in the ctl library: {what}")
}

/// Runs an export's body: a [`Fail`] becomes its code and the thread's message, a panic
/// [`CTL_EPANIC`], `failed` being what the export returns then.
fn ffi<T>(failed: impl FnOnce(c_int) -> T, body: impl FnOnce() -> Result<T, Fail>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            set_last_error(err.message);
            failed(err.code)
        }
        Err(panic) => {
            set_last_error(panic_message(&*panic));
            failed(CTL_EPANIC)
        }
    }
}

/// [`ffi`] for the exports that return a code.
fn ffi_code(body: impl FnOnce() -> Result<(), Fail>) -> c_int {
    ffi(|code| code, || body().map(|()| CTL_OK))
}

/// The message of the last call on this thread that failed; empty if none did. Valid until the
/// next failing call on the same thread.
#[no_mangle]
pub extern "C" fn ctl_last_error() -> *const c_char {
    match catch_unwind(|| LAST_ERROR.with(|last| last.borrow().as_ptr())) {
        Ok(ptr) => ptr,
        Err(_) => c"internal error in the ctl library".as_ptr(),
    }
}

/// `ptr` as a reference, or [`CTL_EINVAL`] naming `what`.
unsafe fn non_null<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Fail> {
    // SAFETY: the caller passes a pointer this library gave out, or NULL (refused here).
    unsafe { ptr.as_mut() }.ok_or_else(|| fail(CTL_EINVAL, format!("{what} is NULL")))
}

/// A handle the library gave out, shared by the daemon's threads, or [`CTL_EINVAL`].
unsafe fn shared<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Fail> {
    // SAFETY: the caller passes a handle this library gave out (never freed), or NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| fail(CTL_EINVAL, format!("{what} is NULL")))
}

/// A C string as UTF-8 text, or [`CTL_EINVAL`] naming `what`.
unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Fail> {
    if ptr.is_null() {
        return Err(fail(CTL_EINVAL, format!("{what} is NULL")));
    }
    // SAFETY: the header asks for a NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| fail(CTL_EINVAL, format!("{what} is not UTF-8")))
}

/// A C string as a path (any bytes but NUL).
unsafe fn path(ptr: *const c_char, what: &str) -> Result<PathBuf, Fail> {
    if ptr.is_null() {
        return Err(fail(CTL_EINVAL, format!("{what} is NULL")));
    }
    // SAFETY: as in `text`.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// The daemon's `void *user`, handed back to its callbacks on the server's threads: the header
/// makes the daemon responsible for what it points at being safe to use from them.
#[derive(Clone, Copy)]
struct User(*mut c_void);
// SAFETY: the pointer is only handed back to the daemon's own callbacks; the header says they
// run on other threads than the daemon's, so the data behind it must be safe to share.
unsafe impl Send for User {}
unsafe impl Sync for User {}

impl User {
    /// The pointer (a method, so that closures capture the whole `User`, which is `Send`).
    fn get(self) -> *mut c_void {
        self.0
    }
}

/// Runs a daemon's callback off the server's runtime thread: it is C and may block.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OpError> {
    match tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(f))).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(OpError::failed(panic_message(&*panic))),
        Err(err) => Err(OpError::failed(format!(
            "the daemon's {what} callback did not complete: {err}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// The builder and the server

/// What the builder handed out. The handles live for the rest of the process (leaked, a few
/// bytes each, made once at start): a daemon thread still blocked in `ctl_work_wait_draining`
/// or writing a last line while the server shuts down must not find them freed.
#[derive(Default)]
struct Owned {
    /// Flushed at shutdown.
    logs: Vec<&'static ctl_log>,
    /// Whether a tracker was handed out (one per server).
    work: bool,
}

/// A handle the daemon keeps for the rest of the process (see [`Owned`]).
fn leak<T>(handle: T) -> &'static mut T {
    Box::leak(Box::new(handle))
}

/// A server being configured (`ctl_builder_new`).
pub struct ctl_builder {
    /// `None` once something failed in a way that leaves no builder (never, today) .
    builder: Option<Builder>,
    counters: Counters,
    owned: Owned,
}

/// A running server (`ctl_builder_start`).
pub struct ctl_server {
    server: Option<BackgroundServer>,
    owned: Owned,
}

impl ctl_builder {
    /// Replaces the builder with what `f` makes of it.
    fn update(&mut self, f: impl FnOnce(Builder) -> Builder) -> Result<(), Fail> {
        let builder = self
            .builder
            .take()
            .ok_or_else(|| fail(CTL_ESTATE, "the builder is not usable"))?;
        self.builder = Some(f(builder));
        Ok(())
    }
}

/// A builder for the daemon `name`, which also names its socket; NULL on error.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_new(name: *const c_char) -> *mut ctl_builder {
    ffi(
        |_| std::ptr::null_mut(),
        || {
            // SAFETY: the header's contract for `name`.
            let name = unsafe { text(name, "name") }?;
            if name.is_empty() {
                return Err(fail(CTL_EINVAL, "name is empty"));
            }
            Ok(Box::into_raw(Box::new(ctl_builder {
                builder: Some(Server::builder(name)),
                counters: Counters::new(),
                owned: Owned::default(),
            })))
        },
    )
}

/// Frees a builder that was never started (the handles it gave out stay valid).
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_free(b: *mut ctl_builder) {
    if !b.is_null() {
        // SAFETY: a builder from `ctl_builder_new`, freed once (the header's contract).
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(b) })));
    }
}

/// Listens at `path` instead of the conventional path for the daemon's name.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_socket_path(b: *mut ctl_builder, p: *const c_char) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for both.
        let (b, p) = unsafe { (non_null(b, "builder")?, path(p, "path")?) };
        b.update(|builder| builder.socket_path(p))
    })
}

/// Permission bits of the socket file (default 0600).
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_socket_mode(b: *mut ctl_builder, mode: u32) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let b = unsafe { non_null(b, "builder") }?;
        b.update(|builder| builder.socket_mode(mode))
    })
}

/// The daemon's version, shown by `hello` and `status`.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_version(b: *mut ctl_builder, v: *const c_char) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for both.
        let (b, v) = unsafe { (non_null(b, "builder")?, text(v, "version")?) };
        let v = v.to_owned();
        b.update(|builder| builder.version(v))
    })
}

/// Binds the socket and serves on a thread of its own; NULL on error. Consumes the builder
/// either way.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_start(b: *mut ctl_builder) -> *mut ctl_server {
    ffi(
        |_| std::ptr::null_mut(),
        || {
            if b.is_null() {
                return Err(fail(CTL_EINVAL, "builder is NULL"));
            }
            // SAFETY: a builder from `ctl_builder_new`, consumed once (the header's contract).
            let b = *unsafe { Box::from_raw(b) };
            let builder = b
                .builder
                .ok_or_else(|| fail(CTL_ESTATE, "the builder is not usable"))?
                .counters(&b.counters);
            let server = builder
                .bind()
                .and_then(Server::start)
                .map_err(|e| fail(CTL_EIO, error_chain(&e)))?;
            Ok(Box::into_raw(Box::new(ctl_server {
                server: Some(server),
                owned: b.owned,
            })))
        },
    )
}

/// Stops the server (bounded by its grace period), removes the socket, flushes the log files
/// and frees the server; the handles stay valid.
#[no_mangle]
pub unsafe extern "C" fn ctl_server_shutdown(s: *mut ctl_server) -> c_int {
    ffi_code(|| {
        if s.is_null() {
            return Err(fail(CTL_EINVAL, "server is NULL"));
        }
        // SAFETY: a server from `ctl_builder_start`, shut down once (the header's contract).
        let mut s = *unsafe { Box::from_raw(s) };
        if let Some(server) = s.server.take() {
            server.shutdown();
        }
        for log in &s.owned.logs {
            let _ = log.log.flush();
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Reload and check

/// `int (*)(void *user, char *msg, size_t msg_len)`.
type MessageFn = unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> c_int;

/// Calls a reload or check callback with room for its message: 0 is success (the message a
/// summary), anything else a refusal (the message why).
fn call_message(f: MessageFn, user: User) -> (c_int, String) {
    let mut buf = vec![0u8; CTL_MSG_LEN];
    // SAFETY: the callback gets `CTL_MSG_LEN` writable bytes, as the header says.
    let rc = unsafe { f(user.get(), buf.as_mut_ptr().cast(), buf.len()) };
    // A message the callback did not end is cut at the buffer's end.
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    buf.truncate(end);
    (rc, String::from_utf8_lossy(&buf).into_owned())
}

/// The hook `reload` or `check` runs: the callback, off the runtime.
fn message_hook(
    what: &'static str,
    f: MessageFn,
    user: User,
) -> impl Fn(OpContext) -> futures_lite::BoxFuture<Result<Reloaded, OpError>> + Send + Sync {
    move |_ctx| {
        Box::pin(async move {
            let (rc, message) = blocking(what, move || call_message(f, user)).await?;
            match rc {
                0 => Ok(Reloaded::changed(message)),
                _ if message.is_empty() => Err(OpError::failed(format!(
                    "the daemon refused the {what} (code {rc})"
                ))),
                _ => Err(OpError::failed(message)),
            }
        })
    }
}

/// A boxed future, without a dependency for one type.
mod futures_lite {
    pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

/// Serves `reload` with `reload`: validate the whole configuration, apply it only if valid.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_reload(
    b: *mut ctl_builder,
    reload: Option<MessageFn>,
    user: *mut c_void,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let b = unsafe { non_null(b, "builder") }?;
        let f = reload.ok_or_else(|| fail(CTL_EINVAL, "reload callback is NULL"))?;
        b.update(|builder| builder.reload(message_hook("reload", f, User(user))))
    })
}

/// Serves `check` with `check`: validate as reload would, apply nothing.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_check(
    b: *mut ctl_builder,
    check: Option<MessageFn>,
    user: *mut c_void,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let b = unsafe { non_null(b, "builder") }?;
        let f = check.ok_or_else(|| fail(CTL_EINVAL, "check callback is NULL"))?;
        b.update(|builder| builder.check(message_hook("check", f, User(user))))
    })
}

// ---------------------------------------------------------------------------------------------
// Log files

/// A log file `rotate` reopens (`ctl_builder_log_file`).
pub struct ctl_log {
    log: LogFile,
}

thread_local! {
    /// A line with the newline it was given without, reused: no allocation per line.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Opens (appending, creating) the log file at `path` and registers it: `rotate` reopens it.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_log_file(
    b: *mut ctl_builder,
    p: *const c_char,
    out: *mut *mut ctl_log,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for all three.
        let (b, p, out) = unsafe {
            (
                non_null(b, "builder")?,
                path(p, "path")?,
                non_null(out, "out")?,
            )
        };
        let log = LogFile::open(&p)
            .map_err(|e| fail(CTL_EIO, format!("{}: {}", p.display(), error_chain(&e))))?;
        b.update(|builder| builder.log_file(&log))?;
        let handle = leak(ctl_log { log });
        *out = handle;
        b.owned.logs.push(handle);
        Ok(())
    })
}

/// Appends one line (`len` bytes, a newline added unless it ends with one), whole or not at
/// all, never torn by a rotation.
#[no_mangle]
pub unsafe extern "C" fn ctl_log_write_line(
    l: *mut ctl_log,
    line: *const c_char,
    len: usize,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let l = unsafe { shared(l, "log") }?;
        if line.is_null() && len > 0 {
            return Err(fail(CTL_EINVAL, "line is NULL"));
        }
        let bytes: &[u8] = match len {
            0 => &[],
            // SAFETY: `len` readable bytes at `line` (the header's contract).
            _ => unsafe { std::slice::from_raw_parts(line.cast(), len) },
        };
        let written = if bytes.last() == Some(&b'\n') {
            l.log.write_line(bytes)
        } else {
            LINE.with(|buf| {
                let mut buf = buf.borrow_mut();
                buf.clear();
                buf.extend_from_slice(bytes);
                buf.push(b'\n');
                l.log.write_line(&buf)
            })
        };
        written.map_err(|e| fail(CTL_EIO, format!("{}: {e}", l.log.path().display())))
    })
}

/// Writes out what is buffered for the file.
#[no_mangle]
pub unsafe extern "C" fn ctl_log_flush(l: *mut ctl_log) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let l = unsafe { shared(l, "log") }?;
        l.log
            .flush()
            .map_err(|e| fail(CTL_EIO, format!("{}: {e}", l.log.path().display())))
    })
}

// ---------------------------------------------------------------------------------------------
// Drain and resume

/// The daemon's work tracker (`ctl_builder_work_tracker`).
pub struct ctl_work {
    tracker: WorkTracker,
    /// Work in flight, by the token `ctl_work_begin` gave.
    guards: Mutex<HashMap<i64, WorkGuard>>,
    next: AtomicI64,
}

/// Registers a work tracker: `drain` and `resume` exist, and `status` reports them.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_work_tracker(
    b: *mut ctl_builder,
    out: *mut *mut ctl_work,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for both.
        let (b, out) = unsafe { (non_null(b, "builder")?, non_null(out, "out")?) };
        if b.owned.work {
            return Err(fail(CTL_ESTATE, "a work tracker is registered already"));
        }
        let tracker = WorkTracker::new();
        b.update(|builder| builder.work_tracker(&tracker))?;
        *out = leak(ctl_work {
            tracker,
            guards: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
        });
        b.owned.work = true;
        Ok(())
    })
}

fn guards(w: &ctl_work) -> std::sync::MutexGuard<'_, HashMap<i64, WorkGuard>> {
    // A panic while holding it leaves a map that is still whole.
    w.guards.lock().unwrap_or_else(|e| e.into_inner())
}

/// Begins a unit of work: a token (0 or more) for `ctl_work_end`, or -1 while draining.
#[no_mangle]
pub unsafe extern "C" fn ctl_work_begin(w: *mut ctl_work) -> i64 {
    ffi(
        |code| code.into(),
        || {
            // SAFETY: the header's contract.
            let w = unsafe { shared(w, "work") }?;
            let Some(guard) = w.tracker.begin() else {
                return Ok(-1);
            };
            let token = w.next.fetch_add(1, Ordering::Relaxed);
            guards(w).insert(token, guard);
            Ok(token)
        },
    )
}

/// Ends the unit of work `token`.
#[no_mangle]
pub unsafe extern "C" fn ctl_work_end(w: *mut ctl_work, token: i64) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let w = unsafe { shared(w, "work") }?;
        let guard = guards(w).remove(&token);
        match guard {
            Some(guard) => {
                drop(guard);
                Ok(())
            }
            None => Err(fail(
                CTL_ENOENT,
                format!("work token {token} is not in flight"),
            )),
        }
    })
}

/// 1 while a drain is under way, else 0.
#[no_mangle]
pub unsafe extern "C" fn ctl_work_is_draining(w: *mut ctl_work) -> c_int {
    ffi(
        |code| code,
        || {
            // SAFETY: the header's contract.
            let w = unsafe { shared(w, "work") }?;
            Ok(w.tracker.is_draining().into())
        },
    )
}

/// Units of work in flight.
#[no_mangle]
pub unsafe extern "C" fn ctl_work_in_flight(w: *mut ctl_work) -> i64 {
    ffi(
        |code| code.into(),
        || {
            // SAFETY: the header's contract.
            let w = unsafe { shared(w, "work") }?;
            Ok(w.tracker.in_flight().try_into().unwrap_or(i64::MAX))
        },
    )
}

fn bound(timeout_ms: i64) -> Option<Duration> {
    u64::try_from(timeout_ms).ok().map(Duration::from_millis)
}

/// Blocks until `reached` holds of the tracker or `timeout_ms` passes (negative: no bound).
unsafe fn wait(
    w: *mut ctl_work,
    timeout_ms: i64,
    reached: impl FnOnce(&WorkTracker, Option<Duration>) -> bool,
) -> c_int {
    ffi(
        |code| code,
        || {
            // SAFETY: the header's contract.
            let w = unsafe { shared(w, "work") }?;
            Ok(reached(&w.tracker, bound(timeout_ms)).into())
        },
    )
}

/// Blocks until a drain begins: 1, or 0 when `timeout_ms` passed first (negative: no bound).
#[no_mangle]
pub unsafe extern "C" fn ctl_work_wait_draining(w: *mut ctl_work, timeout_ms: i64) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { wait(w, timeout_ms, WorkTracker::block_until_draining) }
}

/// Blocks until the daemon takes work again (not draining): 1, or 0 on timeout.
#[no_mangle]
pub unsafe extern "C" fn ctl_work_wait_resumed(w: *mut ctl_work, timeout_ms: i64) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { wait(w, timeout_ms, WorkTracker::block_until_resumed) }
}

/// Blocks until a drain has begun and nothing is in flight: 1, or 0 on timeout.
#[no_mangle]
pub unsafe extern "C" fn ctl_work_wait_drained(w: *mut ctl_work, timeout_ms: i64) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { wait(w, timeout_ms, WorkTracker::block_until_drained) }
}

/// `int (*)(void *user, int draining)`.
type DrainFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;

/// The callback form: `f(user, 1)` when a drain begins (after the tracker, if any, refuses new
/// work), `f(user, 0)` on resume.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_on_drain(
    b: *mut ctl_builder,
    f: Option<DrainFn>,
    user: *mut c_void,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let b = unsafe { non_null(b, "builder") }?;
        let f = f.ok_or_else(|| fail(CTL_EINVAL, "drain callback is NULL"))?;
        let user = User(user);
        let call = move |what: &'static str, draining: c_int| async move {
            // SAFETY: the daemon's callback and its own `user`, as registered.
            let rc = blocking(what, move || unsafe { f(user.get(), draining) }).await?;
            match rc {
                0 => Ok(()),
                _ => Err(OpError::failed(format!(
                    "the daemon's {what} callback failed (code {rc})"
                ))),
            }
        };
        // Whether a drain of the callback's is in force, so that resume says whether it undid
        // one (a tracker's drain state is added by the server).
        let draining = Arc::new(AtomicBool::new(false));
        let resumed = draining.clone();
        b.update(|builder| {
            builder
                .drain(move |_ctx| {
                    let draining = draining.clone();
                    async move {
                        // The callback returned: its own work is done (the header's contract),
                        // and a tracker's is waited for by the server.
                        call("drain", 1).await?;
                        draining.store(true, Ordering::SeqCst);
                        Ok(DrainReply {
                            completed: true,
                            in_flight: 0,
                            resumed: false,
                        })
                    }
                })
                .resume(move |_ctx| {
                    let resumed = resumed.clone();
                    async move {
                        call("resume", 0).await?;
                        let was_draining = resumed.swap(false, Ordering::SeqCst);
                        Ok(ResumeReply { was_draining })
                    }
                })
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Status

/// The daemon's status fields, filled by its status callback.
pub struct ctl_status {
    status: DaemonStatus,
}

/// `int (*)(void *user, ctl_status *s)`.
type StatusFn = unsafe extern "C" fn(*mut c_void, *mut ctl_status) -> c_int;

/// Adds the daemon's fields to `status`: `f` is called for each `status` call.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_status(
    b: *mut ctl_builder,
    f: Option<StatusFn>,
    user: *mut c_void,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        let b = unsafe { non_null(b, "builder") }?;
        let f = f.ok_or_else(|| fail(CTL_EINVAL, "status callback is NULL"))?;
        let user = User(user);
        b.update(|builder| {
            builder.status(move |_ctx| async move {
                let filled = blocking("status", move || {
                    let mut s = ctl_status {
                        status: DaemonStatus::new(),
                    };
                    // SAFETY: the daemon's callback and its own `user`; `s` outlives the call.
                    let _ = unsafe { f(user.get(), &mut s) };
                    s.status
                });
                filled.await.unwrap_or_default()
            })
        })
    })
}

/// Sets the field `name` of `s` to `value`.
unsafe fn field(
    s: *mut ctl_status,
    name: *const c_char,
    value: impl Into<control_server::api::FieldValue>,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for both.
        let (s, name) = unsafe { (non_null(s, "status")?, text(name, "name")?) };
        s.status = std::mem::take(&mut s.status).field(name, value);
        Ok(())
    })
}

/// A text field.
#[no_mangle]
pub unsafe extern "C" fn ctl_status_field_str(
    s: *mut ctl_status,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    // SAFETY: the header's contract.
    match unsafe { text(value, "value") } {
        // SAFETY: the caller's contract, passed on.
        Ok(value) => unsafe { field(s, name, value) },
        Err(err) => ffi_code(|| Err(err)),
    }
}

/// An unsigned integer field.
#[no_mangle]
pub unsafe extern "C" fn ctl_status_field_u64(
    s: *mut ctl_status,
    name: *const c_char,
    value: u64,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { field(s, name, value) }
}

/// A signed integer field.
#[no_mangle]
pub unsafe extern "C" fn ctl_status_field_i64(
    s: *mut ctl_status,
    name: *const c_char,
    value: i64,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { field(s, name, value) }
}

/// A floating-point field.
#[no_mangle]
pub unsafe extern "C" fn ctl_status_field_f64(
    s: *mut ctl_status,
    name: *const c_char,
    value: f64,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { field(s, name, value) }
}

/// A boolean field (`value` nonzero: true).
#[no_mangle]
pub unsafe extern "C" fn ctl_status_field_bool(
    s: *mut ctl_status,
    name: *const c_char,
    value: c_int,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { field(s, name, value != 0) }
}

// ---------------------------------------------------------------------------------------------
// Counters and gauges

/// A counter `ctl counters` shows (`ctl_builder_counter`).
pub struct ctl_counter {
    counter: Counter,
}

/// A gauge `ctl counters` shows (`ctl_builder_gauge`).
pub struct ctl_gauge {
    gauge: Gauge,
}

/// Registers the counter `name` with `help`.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_counter(
    b: *mut ctl_builder,
    name: *const c_char,
    help: *const c_char,
    out: *mut *mut ctl_counter,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for all four.
        let (b, name, help, out) = unsafe {
            (
                non_null(b, "builder")?,
                text(name, "name")?,
                text(help, "help")?,
                non_null(out, "out")?,
            )
        };
        let counter = b
            .counters
            .try_counter(name, help)
            .map_err(|err| fail(CTL_EINVAL, err.to_string()))?;
        *out = leak(ctl_counter { counter });
        Ok(())
    })
}

/// Adds `n` to the counter.
#[no_mangle]
pub unsafe extern "C" fn ctl_counter_add(c: *mut ctl_counter, n: u64) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        unsafe { shared(c, "counter") }?.counter.add(n);
        Ok(())
    })
}

/// Registers the gauge `name` with `help`.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_gauge(
    b: *mut ctl_builder,
    name: *const c_char,
    help: *const c_char,
    out: *mut *mut ctl_gauge,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for all four.
        let (b, name, help, out) = unsafe {
            (
                non_null(b, "builder")?,
                text(name, "name")?,
                text(help, "help")?,
                non_null(out, "out")?,
            )
        };
        let gauge = b
            .counters
            .try_gauge(name, help)
            .map_err(|err| fail(CTL_EINVAL, err.to_string()))?;
        *out = leak(ctl_gauge { gauge });
        Ok(())
    })
}

/// Sets the gauge to `value`.
#[no_mangle]
pub unsafe extern "C" fn ctl_gauge_set(g: *mut ctl_gauge, value: i64) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        unsafe { shared(g, "gauge") }?.gauge.set(value);
        Ok(())
    })
}

/// Adds `n` (negative: subtracts) to the gauge.
#[no_mangle]
pub unsafe extern "C" fn ctl_gauge_add(g: *mut ctl_gauge, n: i64) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract.
        unsafe { shared(g, "gauge") }?.gauge.add(n);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Commands

/// `int (*)(void *user, const char *args_json, char **reply_json_out)`.
type CommandFn = unsafe extern "C" fn(*mut c_void, *const c_char, *mut *mut c_char) -> c_int;

/// Takes a string the daemon's handler allocated with `malloc`, and frees it.
unsafe fn take_malloced(ptr: *mut c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from malloc, as the header asks; freed once, here.
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned();
    unsafe { libc::free(ptr.cast()) };
    Some(text)
}

/// Runs a command's handler with the checked arguments; its reply JSON is what it returns.
fn call_command(name: &str, f: CommandFn, user: User, args: Value) -> Result<Value, OpError> {
    let args = CString::new(args.to_string())
        .map_err(|_| OpError::failed("the arguments hold a NUL character"))?;
    let mut reply: *mut c_char = std::ptr::null_mut();
    // SAFETY: the daemon's handler and its own `user`; `args` outlives the call.
    let rc = unsafe { f(user.get(), args.as_ptr(), &mut reply) };
    // SAFETY: what the handler left there is malloc'd or NULL (the header's contract).
    let reply = unsafe { take_malloced(reply) };
    if rc != 0 {
        return Err(OpError::failed(reply.unwrap_or_else(|| {
            format!("the daemon's command `{name}` failed (code {rc})")
        })));
    }
    match reply {
        None => Ok(Value::Null),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            OpError::failed(format!(
                "the daemon's command `{name}` replied with something that is not JSON: {e}"
            ))
        }),
    }
}

/// Serves the command `name`: arguments checked against `args_schema_json` (a JSON Schema
/// object) before `handler` runs.
#[no_mangle]
pub unsafe extern "C" fn ctl_builder_command(
    b: *mut ctl_builder,
    name: *const c_char,
    doc: *const c_char,
    access: c_int,
    args_schema_json: *const c_char,
    handler: Option<CommandFn>,
    user: *mut c_void,
) -> c_int {
    ffi_code(|| {
        // SAFETY: the header's contract for all of them.
        let (b, name, doc, schema) = unsafe {
            (
                non_null(b, "builder")?,
                text(name, "name")?,
                text(doc, "doc")?,
                text(args_schema_json, "args_schema_json")?,
            )
        };
        let f = handler.ok_or_else(|| fail(CTL_EINVAL, "command handler is NULL"))?;
        let access = match access {
            CTL_READ => Access::Read,
            CTL_OPERATE => Access::Operate,
            CTL_ADMIN => Access::Admin,
            other => {
                return Err(fail(
                    CTL_EINVAL,
                    format!("access {other} is not CTL_READ, CTL_OPERATE or CTL_ADMIN"),
                ))
            }
        };
        let schema: Value = serde_json::from_str(schema).map_err(|e| {
            fail(
                CTL_EINVAL,
                format!("the schema of `{name}` is not JSON: {e}"),
            )
        })?;
        if !schema.is_object() {
            return Err(fail(
                CTL_EINVAL,
                format!("the schema of `{name}` is not a JSON object"),
            ));
        }
        control_server::check_command_name(name).map_err(|e| fail(CTL_EINVAL, e.to_string()))?;
        let user = User(user);
        let command = DynamicCommand::new(name, doc, access, schema, move |ctx, args| {
            let name = ctx.operation;
            async move { blocking("command", move || call_command(name, f, user, args)).await? }
        });
        b.update(|builder| builder.dynamic_command(command))
    })
}

#[cfg(test)]
mod tests {
    //! The error paths, called as C would: codes and messages, never a panic. The working
    //! paths are tested from C, with the real `ctl` (tests/integration/c_daemon.rs).
    use super::*;
    use std::ptr::{null, null_mut};

    fn last_error() -> String {
        // SAFETY: ctl_last_error returns a valid C string.
        unsafe { CStr::from_ptr(ctl_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn null_and_bad_arguments_are_codes_with_messages() {
        unsafe {
            assert!(ctl_builder_new(null()).is_null());
            assert!(last_error().contains("name is NULL"), "{}", last_error());
            assert_eq!(ctl_builder_version(null_mut(), c"1".as_ptr()), CTL_EINVAL);
            assert!(last_error().contains("builder is NULL"));
            assert_eq!(ctl_log_write_line(null_mut(), c"x".as_ptr(), 1), CTL_EINVAL);
            assert_eq!(ctl_work_begin(null_mut()), i64::from(CTL_EINVAL));
            assert!(ctl_builder_start(null_mut()).is_null());
            assert_eq!(ctl_server_shutdown(null_mut()), CTL_EINVAL);

            let b = ctl_builder_new(c"t".as_ptr());
            assert!(!b.is_null());
            let mut counter = null_mut();
            let bad = c"has space".as_ptr();
            let help = c"help".as_ptr();
            assert_eq!(ctl_builder_counter(b, bad, help, &mut counter), CTL_EINVAL);
            assert!(last_error().contains("\"has space\""), "{}", last_error());
            assert!(counter.is_null());
            assert_eq!(
                ctl_builder_counter(b, c"n".as_ptr(), help, &mut counter),
                CTL_OK
            );
            let mut gauge = null_mut();
            // A counter's name again, as a gauge: refused, not a panic across the boundary.
            assert_eq!(
                ctl_builder_gauge(b, c"n".as_ptr(), help, &mut gauge),
                CTL_EINVAL
            );
            assert!(last_error().contains("counter"), "{}", last_error());

            unsafe extern "C" fn handler(
                _: *mut c_void,
                _: *const c_char,
                _: *mut *mut c_char,
            ) -> c_int {
                0
            }
            let doc = c"doc".as_ptr();
            let schema = c"{\"type\":\"object\"}".as_ptr();
            let name = c"bad name".as_ptr();
            let cmd = |name, access, schema| {
                ctl_builder_command(b, name, doc, access, schema, Some(handler), null_mut())
            };
            assert_eq!(cmd(name, CTL_READ, schema), CTL_EINVAL);
            assert!(last_error().contains("bad name"), "{}", last_error());
            assert_eq!(cmd(c"ok".as_ptr(), 7, schema), CTL_EINVAL);
            assert!(last_error().contains("access 7"), "{}", last_error());
            assert_eq!(cmd(c"ok".as_ptr(), CTL_READ, c"{".as_ptr()), CTL_EINVAL);
            assert!(last_error().contains("not JSON"), "{}", last_error());
            assert_eq!(cmd(c"ok".as_ptr(), CTL_READ, c"[]".as_ptr()), CTL_EINVAL);
            assert_eq!(
                ctl_builder_command(b, c"ok".as_ptr(), doc, CTL_READ, schema, None, null_mut()),
                CTL_EINVAL
            );
            assert_eq!(cmd(c"ok".as_ptr(), CTL_READ, schema), CTL_OK);

            let mut work = null_mut();
            assert_eq!(ctl_builder_work_tracker(b, &mut work), CTL_OK);
            assert_eq!(ctl_builder_work_tracker(b, &mut work), CTL_ESTATE);
            let token = ctl_work_begin(work);
            assert!(token >= 0);
            assert_eq!(ctl_work_in_flight(work), 1);
            assert_eq!(ctl_work_end(work, token), CTL_OK);
            assert_eq!(ctl_work_end(work, token), CTL_ENOENT);
            assert_eq!(
                ctl_work_wait_draining(work, 1),
                0,
                "not draining: a timeout"
            );
            assert_eq!(ctl_work_wait_resumed(work, 1), 1);

            // Binding under a regular file fails with why; the builder is gone.
            let file = std::env::temp_dir().join(format!("ctl-capi-file-{}", std::process::id()));
            std::fs::write(&file, "").unwrap();
            let socket = CString::new(file.join("t.sock").into_os_string().into_vec()).unwrap();
            assert_eq!(ctl_builder_socket_path(b, socket.as_ptr()), CTL_OK);
            let started = ctl_builder_start(b);
            let message = last_error();
            std::fs::remove_file(&file).unwrap();
            assert!(started.is_null());
            assert!(message.contains(&*file.to_string_lossy()), "{message}");
        }
    }

    #[test]
    fn a_server_starts_and_shuts_down_removing_its_socket() {
        let dir = std::env::temp_dir().join(format!("ctl-capi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = CString::new(dir.join("t.sock").into_os_string().into_vec()).unwrap();
        let log_path = CString::new(dir.join("t.log").into_os_string().into_vec()).unwrap();
        unsafe {
            let b = ctl_builder_new(c"t".as_ptr());
            assert_eq!(ctl_builder_socket_path(b, socket.as_ptr()), CTL_OK);
            let mut log = null_mut();
            assert_eq!(ctl_builder_log_file(b, log_path.as_ptr(), &mut log), CTL_OK);
            let s = ctl_builder_start(b);
            assert!(!s.is_null(), "{}", last_error());
            assert!(dir.join("t.sock").exists());
            assert_eq!(ctl_log_write_line(log, c"one".as_ptr(), 3), CTL_OK);
            assert_eq!(ctl_server_shutdown(s), CTL_OK);
            assert!(!dir.join("t.sock").exists());
            // The handle outlives the server.
            assert_eq!(ctl_log_write_line(log, c"two\n".as_ptr(), 4), CTL_OK);
        }
        let text = std::fs::read_to_string(dir.join("t.log")).unwrap();
        assert_eq!(text, "one\ntwo\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
