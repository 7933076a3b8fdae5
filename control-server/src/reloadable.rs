//! Validate-then-swap configuration: nothing is applied unless all of it validated, and readers
//! on hot paths never block.

use crate::handler::OpContext;
use arc_swap::ArcSwap;
use std::sync::Arc;

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
#[derive(Debug)]
pub struct Reloadable<T> {
    current: ArcSwap<T>,
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
        }
    }

    /// The active value. Never blocks; the `Arc` stays valid after a reload replaces it.
    pub fn get(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Builds a new value from the old one with `load` (which parses and validates everything)
    /// and swaps it in if `load` succeeded. Returns the old and the new value.
    pub fn try_replace<E>(&self, load: impl FnOnce(&T) -> Result<T, E>) -> Result<Swapped<T>, E> {
        let old = self.get();
        let new = Arc::new(load(&old)?);
        self.current.store(new.clone());
        Ok(Swapped { old, new })
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
        self.current.store(new.clone());
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
