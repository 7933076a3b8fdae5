//! Validate-then-swap configuration: nothing is applied unless all of it validated, and readers
//! on hot paths never block. A daemon that registers its load-and-validate step
//! ([`Load`]) with [`Builder::reloadable`](crate::Builder::reloadable) gets `reload` and
//! `check` from that one step.

use crate::handler::{hook, Hook, OpContext, Reloaded};
use arc_swap::ArcSwap;
use control_api::OpError;
use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;

/// What a reload, or a `check`, tells the operator about a new configuration: what differs
/// from the active one. Equality (`PartialEq`) decides whether anything changed at all.
///
/// ```
/// use control_server::reloadable::Changes;
///
/// #[derive(PartialEq)]
/// struct Config { workers: u32 }
///
/// impl Changes for Config {
///     fn changes_from(&self, old: &Self) -> String {
///         format!("workers {} -> {}", old.workers, self.workers)
///     }
/// }
/// assert_eq!(Config { workers: 8 }.changes_from(&Config { workers: 4 }), "workers 4 -> 8");
/// ```
pub trait Changes: PartialEq {
    /// What differs from `old`, in one line (e.g. `workers 4 -> 8`). Called only when the two
    /// differ.
    fn changes_from(&self, old: &Self) -> String;
}

/// A daemon's load-and-validate step, registered once with
/// [`Builder::reloadable`](crate::Builder::reloadable): `reload` runs it and applies the new
/// value, `check` runs it and applies nothing. So `check` can never say "valid" of a file that
/// `reload` would refuse, nor the other way round.
///
/// A closure `Fn(OpContext, Arc<T>) -> impl Future<Output = Result<T, OpError>>` is one. A
/// type of your own can also say what applying a new value takes besides storing it
/// ([`Load::apply`]: switching to the log file it names, say).
///
/// Neither step runs on the async runtime's worker threads: the server runs both on a thread of
/// tokio's blocking pool (`load`'s future is driven there with
/// [`Handle::block_on`](tokio::runtime::Handle::block_on)), so plain blocking file work
/// (`std::fs`, `stat`, opening a log file, a write to a slow disk) is fine in either and never
/// stalls the daemon or its control plane, even on a `current_thread` runtime. Async work
/// (awaiting a timer, a socket, `ctx.until_deadline()`) works in `load` as usual. A caller who
/// gives up, or whose deadline passes, ends only its wait: the step runs to its end, and the
/// next reload or check starts after it.
pub trait Load<T>: Send + Sync + 'static {
    /// Reads and validates the whole new configuration, given the active one. Must change
    /// nothing, not even create a file: `check` runs it too (`ctx.operation` says which
    /// operation runs it). A refusal is best an [`OpError::failed_because`] naming the file,
    /// the line and what is wrong. Runs off the runtime (see [`Load`]): blocking reads are fine.
    fn load(
        &self,
        ctx: OpContext,
        active: Arc<T>,
    ) -> impl Future<Output = Result<T, OpError>> + Send;

    /// Called by `reload` only, once a new value that differs from `old` is valid and its
    /// caller still waits, just before it replaces `old`: do what the new value needs besides
    /// being stored. An error fails the reload and leaves `old` active, so undo anything
    /// half-done before returning it. Runs on a thread of the blocking pool, never on the
    /// runtime (opening a file, flushing a buffer to disk are fine here), and once started it
    /// runs to its end: the new value is stored when it succeeds even if the caller has gone
    /// meanwhile. Does nothing by default.
    fn apply(&self, old: &T, new: &T) -> Result<(), OpError> {
        let _ = (old, new);
        Ok(())
    }
}

impl<T, F, Fut> Load<T> for F
where
    F: Fn(OpContext, Arc<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, OpError>> + Send,
{
    fn load(
        &self,
        ctx: OpContext,
        active: Arc<T>,
    ) -> impl Future<Output = Result<T, OpError>> + Send {
        self(ctx, active)
    }
}

/// A `reload` or `check` hook: what it would change, or why the file is refused.
pub(crate) type ConfigHook = Hook<Result<Reloaded, OpError>>;

/// The `reload` and `check` hooks made from one [`Load`] step and the value it replaces.
pub(crate) fn hooks<T, L>(config: Arc<Reloadable<T>>, loader: L) -> (ConfigHook, ConfigHook)
where
    T: Changes + Send + Sync + 'static,
    L: Load<T>,
{
    let loader = Arc::new(loader);
    let (checked, checking) = (config.clone(), loader.clone());
    let reload = hook(move |ctx: OpContext| {
        let (config, loader) = (config.clone(), loader.clone());
        async move {
            let old = config.get();
            let new = load_off_runtime(&loader, ctx.clone(), old.clone()).await?;
            if new == *old {
                return Ok(Reloaded::unchanged());
            }
            // A caller who gave up must not see the configuration change later by surprise.
            if ctx.expired() {
                return Err(OpError::failed(
                    ReloadError::<std::convert::Infallible>::DeadlinePassed.to_string(),
                ));
            }
            // Past this point the work is done whatever the caller does: `apply` runs to its
            // end, and the value it applied is the one stored.
            let new = Arc::new(new);
            let (applying, was, now) = (loader.clone(), old.clone(), new.clone());
            off_runtime(move || applying.apply(&was, &now)).await?;
            let summary = new.changes_from(&old);
            config.current.store(new);
            Ok(Reloaded::changed(summary))
        }
    });
    let check = hook(move |ctx: OpContext| {
        let (config, loader) = (checked.clone(), checking.clone());
        async move {
            let active = config.get();
            let new = load_off_runtime(&loader, ctx, active.clone()).await?;
            Ok(if new == *active {
                Reloaded::unchanged()
            } else {
                Reloaded::changed(new.changes_from(&active))
            })
        }
    });
    (reload, check)
}

/// Runs the daemon's `load` on a thread of the blocking pool, driving its future there: file
/// reads written the plain blocking way stall no runtime worker.
async fn load_off_runtime<T, L>(
    loader: &Arc<L>,
    ctx: OpContext,
    active: Arc<T>,
) -> Result<T, OpError>
where
    T: Send + Sync + 'static,
    L: Load<T>,
{
    let loader = loader.clone();
    let runtime = tokio::runtime::Handle::current();
    off_runtime(move || runtime.block_on(loader.load(ctx, active))).await
}

/// Runs `step` on a thread of the blocking pool, in the caller's span. A panic there is raised
/// again here, where the server turns it into an error as it does for any handler.
async fn off_runtime<R: Send + 'static>(
    step: impl FnOnce() -> Result<R, OpError> + Send + 'static,
) -> Result<R, OpError> {
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(step)).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(OpError::failed(
            "the server is shutting down; the new configuration was not applied",
        )),
    }
}

/// A value (usually the daemon's configuration) that reloads replace as a whole.
///
/// Readers call [`Reloadable::get`]: a lock-free load of an `Arc`, never blocked by a reload.
/// [`Reloadable::reload`] runs the daemon's load-and-validate step and swaps the result in only
/// if it succeeded and the caller's deadline has not passed; otherwise the old value stays.
///
/// ```
/// use control_server::Reloadable;
///
/// #[derive(Debug, PartialEq)]
/// struct Config { workers: u32 }
///
/// let config = Reloadable::new(Config { workers: 4 });
/// let refused = config.try_replace(|_old| Err::<Config, _>("workers: must be > 0"));
/// assert!(refused.is_err());
/// assert_eq!(config.get().workers, 4); // untouched
/// config.try_replace(|_old| Ok::<_, &str>(Config { workers: 8 })).unwrap();
/// assert_eq!(config.get().workers, 8);
/// ```
///
/// Registered with [`Builder::reloadable`](crate::Builder::reloadable), a value replaced outside
/// `reload` (by [`try_replace`](Reloadable::try_replace) or [`reload`](Reloadable::reload) in a
/// command's handler) is recorded as `reload`s are: the configuration generation moves, and
/// `status` shows it as the last reload, with what changed.
pub struct Reloadable<T> {
    current: ArcSwap<T>,
    /// Set by the server that serves `reload` for this value: records a replacement made
    /// elsewhere (old, new) in its generations and history.
    recorder: OnceLock<Recorder<T>>,
}

type Recorder<T> = Box<dyn Fn(&T, &T) + Send + Sync>;

impl<T: std::fmt::Debug> std::fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloadable")
            .field("current", &self.current.load())
            .field("recorded", &self.recorder.get().is_some())
            .finish()
    }
}

/// Why a reload left the old value in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError<E> {
    /// Loading or validating failed.
    #[error(transparent)]
    Invalid(E),
    /// The new value was valid, but the caller's deadline passed before it could be applied.
    #[error(
        "the deadline passed before the new configuration was applied; the old one stays active"
    )]
    DeadlinePassed,
}

/// The outcome of a successful swap.
#[derive(Debug)]
pub struct Swapped<T> {
    /// The value that was active before.
    pub old: Arc<T>,
    /// The value now active.
    pub new: Arc<T>,
}

impl<T: Default> Default for Reloadable<T> {
    /// Starts with `T::default()`, for a daemon whose configuration has defaults for everything.
    fn default() -> Self {
        Reloadable::new(T::default())
    }
}

impl<T> Reloadable<T> {
    /// Starts with `initial`.
    pub fn new(initial: T) -> Self {
        Reloadable {
            current: ArcSwap::from_pointee(initial),
            recorder: OnceLock::new(),
        }
    }

    /// The active value. Never blocks; the `Arc` stays valid after a reload replaces it.
    pub fn get(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Builds a new value from the old one with `load` (which parses and validates everything)
    /// and swaps it in if `load` succeeded. Returns the old and the new value. Registered with
    /// the server, the swap is recorded as a reload's (see above).
    pub fn try_replace<E>(&self, load: impl FnOnce(&T) -> Result<T, E>) -> Result<Swapped<T>, E> {
        let old = self.get();
        let new = Arc::new(load(&old)?);
        self.store(&old, new.clone());
        Ok(Swapped { old, new })
    }

    /// Stores `new` in place of `old`, and records it where the server asked to.
    fn store(&self, old: &Arc<T>, new: Arc<T>) {
        self.current.store(new.clone());
        if let Some(record) = self.recorder.get() {
            record(old, &new);
        }
    }

    /// Has replacements made outside `reload` recorded by `record`: set once, by the server.
    pub(crate) fn record_with(&self, record: Recorder<T>) {
        let _ = self.recorder.set(record);
    }

    /// Like [`Reloadable::try_replace`] for a `reload` handler: `load` runs (and may take its
    /// time), then the new value is applied only if the caller's deadline has not passed, so a
    /// reload the caller gave up on never lands later by surprise.
    pub async fn reload<E, F, Fut>(
        &self,
        ctx: &OpContext,
        load: F,
    ) -> Result<Swapped<T>, ReloadError<E>>
    where
        F: FnOnce(Arc<T>) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let old = self.get();
        let new = Arc::new(load(old.clone()).await.map_err(ReloadError::Invalid)?);
        if ctx.expired() {
            return Err(ReloadError::DeadlinePassed);
        }
        self.store(&old, new.clone());
        Ok(Swapped { old, new })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Config {
        workers: u32,
        name: String,
    }

    #[test]
    fn a_default_reloadable_holds_the_default_value() {
        let config: Reloadable<Config> = Reloadable::default();
        assert_eq!(*config.get(), Config::default());
    }
}
