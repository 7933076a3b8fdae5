//! The terminal's modes while the live view runs (raw, the alternate screen, no cursor), and a
//! guard that puts them back whatever ends the view: a return, an error, or a panic (whose
//! message is printed after the terminal is restored, where it can be read).

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Modes a view sets on entering and takes back on leaving.
pub trait Modes {
    fn enter(&mut self) -> io::Result<()>;
    /// Called once whatever `enter` got done: it undoes what it can and reports nothing.
    fn leave(&mut self);
}

/// Whether the real terminal is in the view's modes, so that leaving happens once: from the
/// panic hook or the guard, whichever comes first.
static ENTERED: AtomicBool = AtomicBool::new(false);

/// The terminal on stdout.
pub struct Tty;

impl Modes for Tty {
    fn enter(&mut self) -> io::Result<()> {
        ENTERED.store(true, Ordering::SeqCst);
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, Hide)
    }

    fn leave(&mut self) {
        if ENTERED.swap(false, Ordering::SeqCst) {
            // Raw mode first: it is what makes a shell unusable if left on.
            let _ = disable_raw_mode();
            let _ = execute!(io::stdout(), Show, LeaveAlternateScreen);
        }
    }
}

/// Holds the modes while it lives.
pub struct Guard<M: Modes> {
    modes: M,
}

impl<M: Modes> Guard<M> {
    /// Enters `modes`; what a failing `enter` did set is undone before the error returns.
    pub fn enter(modes: M) -> io::Result<Guard<M>> {
        let mut guard = Guard { modes };
        guard.modes.enter()?;
        Ok(guard)
    }
}

impl<M: Modes> Drop for Guard<M> {
    fn drop(&mut self) {
        self.modes.leave();
    }
}

/// Makes a panic restore the terminal before its message is printed: the guard alone would
/// restore it only while unwinding, after the message went to the alternate screen and was
/// lost with it.
pub fn restore_on_panic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            Tty.leave();
            hook(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what was done to it; `fail` makes `enter` fail after its first step.
    #[derive(Clone, Default)]
    struct Recorder {
        done: Arc<Mutex<Vec<&'static str>>>,
        fail: bool,
    }

    impl Modes for Recorder {
        fn enter(&mut self) -> io::Result<()> {
            self.done.lock().unwrap().push("raw");
            if self.fail {
                return Err(io::Error::other("no alternate screen"));
            }
            self.done.lock().unwrap().push("alternate");
            Ok(())
        }

        fn leave(&mut self) {
            self.done.lock().unwrap().push("restored");
        }
    }

    fn done(r: &Recorder) -> Vec<&'static str> {
        r.done.lock().unwrap().clone()
    }

    #[test]
    fn the_terminal_is_restored_on_return_on_error_and_on_panic() {
        let r = Recorder::default();
        let guard = Guard::enter(r.clone()).unwrap();
        assert_eq!(done(&r), ["raw", "alternate"]);
        drop(guard);
        assert_eq!(done(&r), ["raw", "alternate", "restored"]);

        // An error on the way: `?` drops the guard.
        let r = Recorder::default();
        let view = |r: Recorder| -> io::Result<()> {
            let _guard = Guard::enter(r)?;
            Err(io::Error::other("drawing failed"))
        };
        assert!(view(r.clone()).is_err());
        assert_eq!(done(&r), ["raw", "alternate", "restored"]);

        let r = Recorder::default();
        let inner = r.clone();
        let panicked = std::panic::catch_unwind(move || {
            let _guard = Guard::enter(inner).unwrap();
            panic!("a bug in the view");
        });
        assert!(panicked.is_err());
        assert_eq!(done(&r), ["raw", "alternate", "restored"]);
    }

    #[test]
    fn a_half_done_enter_is_undone() {
        let r = Recorder {
            fail: true,
            ..Recorder::default()
        };
        assert!(Guard::enter(r.clone()).is_err());
        assert_eq!(done(&r), ["raw", "restored"]);
    }
}
