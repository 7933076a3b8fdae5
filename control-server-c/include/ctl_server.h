/*
 * ctl_server.h: the ctl control plane for C and C++ daemons (control-server behind a C ABI).
 *
 * A daemon registers what it has on a builder (reload and check callbacks, log files, a work
 * tracker, status fields, counters, its own commands), starts the server, and from then on
 * `ctl reload NAME`, `ctl check NAME`, `ctl rotate NAME`, `ctl drain NAME`, `ctl status NAME`,
 * `ctl counters NAME` and `ctl call NAME COMMAND key=value` reach it over a Unix socket.
 *
 * Link with libcontrol_server_c.a (or .so) and the system libraries it needs:
 *     cc -I control-server-c/include daemon.c target/release/libcontrol_server_c.a \
 *        -lpthread -ldl -lm -lgcc_s -lc
 * (`cargo rustc -p control-server-c --crate-type staticlib -- --print native-static-libs`
 * prints the list for your toolchain.)
 *
 * Errors: every function returning int returns CTL_OK (0) or a negative code below; the
 * functions returning a pointer return NULL on error. ctl_last_error() then says why, for the
 * calling thread. No function ever aborts the process on bad input.
 *
 * Threads: the server runs on a thread of its own (with its own runtime; the daemon needs none).
 * The daemon's callbacks (reload, check, status, drain, commands) run on the server's worker
 * threads, not on the daemon's, and several may run at once (reload and check never overlap
 * each other): whatever they and `user` touch must be safe to share with the daemon's threads
 * (a mutex, atomics). Callbacks may block (read files); they must not throw (C++: catch
 * everything inside) nor longjmp out. ctl_log_write_line, ctl_work_*, ctl_counter_* and
 * ctl_gauge_* may be called from any thread at any time while the server runs.
 *
 * Memory: strings passed in are copied before the function returns. The builder and the server
 * are the caller's to free (ctl_builder_start consumes the builder, ctl_server_shutdown frees
 * the server). Handles the builder gives out (ctl_log, ctl_work, ctl_counter, ctl_gauge) belong
 * to the library and stay valid for the rest of the process, even after ctl_server_shutdown (a
 * thread still blocked in ctl_work_wait_draining, a last log line): they are made once at start,
 * a few bytes each, and never freed. A command handler's reply is allocated by the daemon with
 * malloc (e.g. strdup) and freed by the library with free.
 */
#ifndef CTL_SERVER_H
#define CTL_SERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes (negative errno values). */
#define CTL_OK 0
#define CTL_EINVAL (-22)  /* an argument is NULL, not UTF-8, not valid JSON or out of range */
#define CTL_EIO (-5)      /* a file or the socket could not be opened or bound */
#define CTL_ESTATE (-114) /* the builder is already used up, or something was given twice */
#define CTL_ENOENT (-2)   /* a work token that is not in flight */
#define CTL_EPANIC (-131) /* a bug inside the library, caught before it reached the caller */

/* Access levels of commands: who may call them is the server's policy (root and the daemon's
 * own uid: everything). */
#define CTL_READ 0
#define CTL_OPERATE 1
#define CTL_ADMIN 2

/* Room a reload or check callback has for its message, the terminating NUL included. */
#define CTL_MSG_LEN 1024

typedef struct ctl_builder ctl_builder;
typedef struct ctl_server ctl_server;
typedef struct ctl_log ctl_log;
typedef struct ctl_work ctl_work;
typedef struct ctl_counter ctl_counter;
typedef struct ctl_gauge ctl_gauge;
typedef struct ctl_status ctl_status;

/* Why the last failing call on this thread failed; "" if none did. Valid until the next failing
 * call on the same thread. */
const char *ctl_last_error(void);

/* ---- Builder and server ------------------------------------------------------------------ */

/* A builder for the daemon `name`, which also names its socket: /run/ctl/NAME.sock as root,
 * /run/NAME/ctl.sock when that directory is the daemon user's, else
 * $XDG_RUNTIME_DIR/ctl/NAME.sock; $CTL_SOCKET_DIR overrides all. NULL on error. */
ctl_builder *ctl_builder_new(const char *name);
/* Frees a builder that was never started (ctl_builder_start consumes it). NULL is ignored. */
void ctl_builder_free(ctl_builder *b);
/* Listens at `path` instead of the conventional path. */
int ctl_builder_socket_path(ctl_builder *b, const char *path);
/* Permission bits of the socket file (default 0600). */
int ctl_builder_socket_mode(ctl_builder *b, uint32_t mode);
/* The daemon's version, shown by `hello` and `status`. */
int ctl_builder_version(ctl_builder *b, const char *version);

/* Binds the socket (refusing a live one, replacing a stale one) and serves on a thread of its
 * own. Consumes the builder whether it succeeds or not. NULL on error (another instance
 * serves, a command given twice or badly named, ...). */
ctl_server *ctl_builder_start(ctl_builder *b);
/* Stops accepting, removes the socket, lets calls in progress finish (at most 10 s), flushes
 * the log files, and frees the server (the handles stay valid). Blocks. */
int ctl_server_shutdown(ctl_server *s);

/* ---- Reload and check -------------------------------------------------------------------- */

/* `int reload(void *user, char *msg, size_t msg_len)`: read and validate the whole new
 * configuration, and apply it only if all of it is valid. Return 0 when applied, with a summary
 * of what changed in `msg` (e.g. "rate 5 -> 8"), or nonzero when refused, with why in `msg`
 * (name the file and the line). `msg` has `msg_len` (CTL_MSG_LEN) bytes, zeroed; write a
 * NUL-terminated string (a longer one is cut). `ctl reload` prints the message and exits 1 on a
 * refusal. Reloads never overlap. */
typedef int (*ctl_message_fn)(void *user, char *msg, size_t msg_len);
int ctl_builder_reload(ctl_builder *b, ctl_message_fn reload, void *user);
/* `ctl check`: the same shape, validating as reload would and applying nothing. */
int ctl_builder_check(ctl_builder *b, ctl_message_fn check, void *user);

/* ---- Log files --------------------------------------------------------------------------- */

/* Opens the log file at `path` (appending, created 0640 if missing) and registers it: `ctl
 * rotate` reopens it, with no code of the daemon's, and `status` lists it. The daemon writes
 * its log through *out: a line is never lost nor split across a rotation. */
int ctl_builder_log_file(ctl_builder *b, const char *path, ctl_log **out);
/* Appends one line of `len` bytes (a newline is added unless it ends with one), whole or not
 * at all. Any thread. */
int ctl_log_write_line(ctl_log *log, const char *line, size_t len);
/* Writes out whatever is buffered for the file. */
int ctl_log_flush(ctl_log *log);

/* ---- Drain and resume -------------------------------------------------------------------- */

/* Registers a work tracker: `ctl drain` refuses new work and waits for the work in flight,
 * `ctl resume` takes work again, `status` reports both. */
int ctl_builder_work_tracker(ctl_builder *b, ctl_work **out);
/* Begins a unit of work (a client, a request): a token (>= 0) for ctl_work_end, or -1 while
 * draining (refuse the work then). */
int64_t ctl_work_begin(ctl_work *w);
/* Ends the unit of work `token`; CTL_ENOENT if it is not in flight. */
int ctl_work_end(ctl_work *w, int64_t token);
/* 1 while draining, else 0. */
int ctl_work_is_draining(ctl_work *w);
/* Units of work in flight. */
int64_t ctl_work_in_flight(ctl_work *w);
/* Block until a drain begins / the daemon takes work again / a drain has begun and nothing is
 * in flight: 1 when reached, 0 when `timeout_ms` passed first (negative: no bound). For a
 * thread of the daemon's, e.g. one that closes its listener on drain and reopens it on
 * resume. */
int ctl_work_wait_draining(ctl_work *w, int64_t timeout_ms);
int ctl_work_wait_resumed(ctl_work *w, int64_t timeout_ms);
int ctl_work_wait_drained(ctl_work *w, int64_t timeout_ms);

/* The callback form: `int on_drain(void *user, int draining)` is called with 1 when `ctl drain`
 * begins (after the tracker, if registered, refuses new work; before it waits for the work in
 * flight) and with 0 on `ctl resume`. Return 0; nonzero fails the call. With 1, return only
 * once the work the tracker does not count is finished (it may block, within `ctl drain`'s
 * deadline): returning is what `ctl drain` reports as drained when no tracker is registered. */
typedef int (*ctl_drain_fn)(void *user, int draining);
int ctl_builder_on_drain(ctl_builder *b, ctl_drain_fn on_drain, void *user);

/* ---- Status ------------------------------------------------------------------------------ */

/* `int status(void *user, ctl_status *s)`: called for each `ctl status`; add fields to `s`
 * (shown in the order added, typed in `ctl --json status`). Return 0. `s` is valid only during
 * the call. The server adds pid, uptime, version, reloads, log files, drain state. */
typedef int (*ctl_status_fn)(void *user, ctl_status *s);
int ctl_builder_status(ctl_builder *b, ctl_status_fn status, void *user);
int ctl_status_field_str(ctl_status *s, const char *name, const char *value);
int ctl_status_field_u64(ctl_status *s, const char *name, uint64_t value);
int ctl_status_field_i64(ctl_status *s, const char *name, int64_t value);
int ctl_status_field_f64(ctl_status *s, const char *name, double value);
int ctl_status_field_bool(ctl_status *s, const char *name, int value);

/* ---- Counters and gauges ----------------------------------------------------------------- */

/* Registers the counter `name` (1 to 128 ASCII letters, digits, '_', '.', ':' or '-'; e.g.
 * "requests.served") with a one-line `help`: `ctl counters` shows it. Registering a name again
 * gives another handle to the same counter. */
int ctl_builder_counter(ctl_builder *b, const char *name, const char *help, ctl_counter **out);
int ctl_counter_add(ctl_counter *c, uint64_t n);
/* A gauge: a value that goes up and down. */
int ctl_builder_gauge(ctl_builder *b, const char *name, const char *help, ctl_gauge **out);
int ctl_gauge_set(ctl_gauge *g, int64_t value);
int ctl_gauge_add(ctl_gauge *g, int64_t n);

/* ---- Commands ---------------------------------------------------------------------------- */

/* `int handler(void *user, const char *args_json, char **reply_json_out)`: `args_json` is the
 * call's arguments as a JSON object, already checked against the schema (valid during the call
 * only). Return 0 with a malloc'd JSON reply in *reply_json_out (or leave it NULL: the reply
 * is null), or nonzero with an optional malloc'd error message there. The library frees it. */
typedef int (*ctl_command_fn)(void *user, const char *args_json, char **reply_json_out);

/* Serves the command `name` (1 to 64 ASCII letters, digits, '-' or '_', starting with a letter,
 * not a built-in's name): `ctl call NAME name key=value` reaches it, `ctl describe` lists it.
 * `access` is CTL_READ, CTL_OPERATE or CTL_ADMIN. `args_schema_json` is a JSON Schema object
 * for the arguments, e.g.
 *     {"type":"object","properties":{"rate":{"type":"integer","minimum":1,"maximum":1000}},
 *      "required":["rate"],"additionalProperties":false}
 * An argument that does not fit it is refused, naming it, before `handler` runs (`ctl call`
 * exits 2). A bad name or schema is refused here with CTL_EINVAL. */
int ctl_builder_command(ctl_builder *b, const char *name, const char *doc, int access,
                        const char *args_schema_json, ctl_command_fn handler, void *user);

#ifdef __cplusplus
}
#endif

#endif /* CTL_SERVER_H */
