//! The configuration's load-and-validate step, registered once with
//! `Builder::reloadable`: `ctl reload` runs it and applies the result, `ctl check` runs it and
//! applies nothing. It therefore changes nothing itself; what applying a new configuration takes
//! besides storing it (switching to another log file) is in [`Load::apply`].

use crate::config::Config;
use crate::gate::Gate;
use control_api::{Command, OpError, ReloadRequest};
use control_server::{Changes, Load, LogFile, OpContext};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a refusal begins: a reload refused a configuration, a check says one would be refused.
fn refused(reloading: bool) -> &'static str {
    if reloading {
        "new configuration refused, the running one stays active"
    } else {
        "this configuration would be refused by a reload; the running one stays active"
    }
}

/// Where the configuration comes from, and what applying it touches.
pub struct ConfigSource {
    /// The file `reload` and `check` read.
    pub path: PathBuf,
    /// Switched to another file when the configuration names one.
    pub log: LogFile,
    /// How many times a reload ran, to show reloads being shared (checks are not counted).
    pub reload_runs: Arc<AtomicU64>,
}

impl Load<Config> for ConfigSource {
    async fn load(&self, ctx: OpContext, active: Arc<Config>) -> Result<Config, OpError> {
        let reloading = ctx.operation == ReloadRequest::NAME;
        if reloading {
            self.reload_runs.fetch_add(1, Ordering::SeqCst);
        }
        let refused = refused(reloading);
        let new = Config::load(&self.path)
            .await
            .map_err(|e| OpError::failed_because(refused, &e))?;
        if new.log_file != active.log_file {
            writable_place(&new.log_file).map_err(|e| {
                OpError::failed_because(
                    format!(
                        "{refused}: cannot write log_file {}",
                        new.log_file.display()
                    ),
                    &e,
                )
            })?;
        }
        if let Some(path) = &new.load_gate {
            tracing::info!("load: blocked at the gate {}", path.display());
            block_at(path).map_err(|e| {
                OpError::failed_because(
                    format!("{refused}: load_gate {} failed", path.display()),
                    &e,
                )
            })?;
        }
        if new.reload_panics {
            panic!("reload_panics is set in {}", self.path.display());
        }
        // The test hook holds reloads only: a check has nothing to apply that a test could
        // race with.
        if reloading {
            tracing::info!("reload: configuration read and valid");
            if let Some(path) = &new.reload_gate {
                let gate = Gate::open(path).map_err(|e| {
                    OpError::failed_because(
                        format!("{refused}: cannot open reload_gate {}", path.display()),
                        &e,
                    )
                })?;
                wait_at(gate, &ctx).await.map_err(|e| {
                    OpError::failed_because(
                        format!("{refused}: reload_gate {} failed", path.display()),
                        &e,
                    )
                })?;
            }
        }
        Ok(new)
    }

    /// Runs on a thread of the blocking pool (the server sees to it): opening the new log file,
    /// and in buffered mode writing out what the old one holds, block that thread only.
    fn apply(&self, old: &Config, new: &Config) -> Result<(), OpError> {
        if let Some(path) = &new.apply_gate {
            tracing::info!("reload: applying, blocked at the gate {}", path.display());
            block_at(path).map_err(|e| {
                OpError::failed_because(
                    format!("{}: apply_gate {} failed", refused(true), path.display()),
                    &e,
                )
            })?;
        }
        if new.log_file != old.log_file {
            self.log.switch_to(&new.log_file).map_err(|e| {
                OpError::failed_because(
                    format!(
                        "{}: cannot open log_file {}",
                        refused(true),
                        new.log_file.display()
                    ),
                    &e,
                )
            })?;
        }
        tracing::info!("configuration reloaded: {}", new.changes_from(old));
        Ok(())
    }
}

/// Whether a log file could be opened at `path`, without creating it (a check must change
/// nothing): its directory exists and is writable, and what is there already is a regular
/// file. `LogFile` makes the last checks again when `apply` opens it. Blocking calls are fine:
/// the server runs `load` off the runtime.
fn writable_place(path: &Path) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let dir = path.parent().unwrap_or(Path::new("."));
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(Error::new(
            ErrorKind::NotADirectory,
            "its directory is not one",
        ));
    }
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => Err(Error::new(
            ErrorKind::InvalidInput,
            "something other than a regular file is there",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Test hook: blocks this thread at the FIFO `path` (opening it for reading blocks until a
/// writer comes) until something is written to it or the writer closes it.
fn block_at(path: &Path) -> std::io::Result<()> {
    use std::io::Read;
    let mut fifo = std::fs::File::open(path)?;
    let _ = fifo.read(&mut [0u8; 64])?;
    Ok(())
}

/// Test hook: holds a reload at `gate` until the test opens it; says when the caller's deadline
/// passes meanwhile, so that a test can open the gate after that rather than guess.
async fn wait_at(gate: Gate, ctx: &OpContext) -> std::io::Result<()> {
    tracing::info!("reload: waiting at the gate {}", gate.path().display());
    let passed = gate.passed();
    tokio::pin!(passed);
    tokio::select! {
        result = &mut passed => return result,
        () = ctx.until_deadline() => {}
    }
    tracing::info!("reload: the caller's deadline passed at the gate");
    passed.await
}
