//! The smallest whole embedding: a daemon that greets the clients of its own socket, with the
//! four things embedding the control server into a real daemon called for, and nothing else:
//!
//! - `reload` and `check`: the configuration read safely by one load-and-validate step, swapped
//!   in whole only if valid and in time (`check` runs the same step and applies nothing);
//! - `rotate`: the daemon's own `tracing` output in a log file that `ctl rotate` reopens;
//! - `drain`: the listener closed the moment a drain begins, reopened on `resume`;
//! - `status`: two fields of the daemon's own.
//!
//! ```text
//! embedded NAME CONFIG LOG SERVICE_SOCKET
//! ```
//!
//! CONFIG holds one line, the greeting. The control socket follows the convention for NAME
//! (`CTL_SOCKET_DIR` overrides it).

use control_server::api::OpError;
use control_server::{
    config_file, Changes, DaemonStatus, LogFile, OpContext, Reloadable, Server, WorkTracker,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Why a new greeting is refused.
#[derive(Debug, thiserror::Error)]
enum BadGreeting {
    #[error(transparent)]
    File(#[from] config_file::ConfigFileError),
    #[error("the greeting is empty")]
    Empty,
}

/// The configuration: one line.
#[derive(PartialEq)]
struct Greeting(String);

/// What `reload` and `check` say changed.
impl Changes for Greeting {
    fn changes_from(&self, old: &Self) -> String {
        format!("greeting {:?} -> {:?}", old.0, self.0)
    }
}

/// Reads and validates the greeting, and changes nothing: `reload` and `check` both run it.
async fn load(path: &Path) -> Result<Greeting, OpError> {
    let read = async {
        let text = config_file::read_to_string(path).await?;
        match text.trim() {
            "" => Err(BadGreeting::Empty),
            greeting => Ok(Greeting(greeting.to_owned())),
        }
    };
    read.await
        .map_err(|e| OpError::failed_because("greeting refused, the old one stays", &e))
}

struct Greeter {
    greeting: Arc<Reloadable<Greeting>>,
    greeted: AtomicU64,
}

impl Greeter {
    fn status(&self) -> DaemonStatus {
        DaemonStatus::new()
            .field("greeted", self.greeted.load(Ordering::Relaxed))
            .field("greeting", self.greeting.get().0.as_str())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, config, log, service] = &args[..] else {
        anyhow::bail!("usage: {}", "embedded NAME CONFIG LOG SERVICE_SOCKET");
    };
    control_server::signals::ignore_legacy_signals()?;
    let log = LogFile::open(log)?;
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .init();
    let config_path = PathBuf::from(config);
    let daemon = Arc::new(Greeter {
        greeting: Arc::new(Reloadable::new(load(&config_path).await?)),
        greeted: AtomicU64::new(0),
    });
    let work = WorkTracker::new();
    let reporting = daemon.clone();
    let server = Server::builder(name.as_str())
        .reloadable(&daemon.greeting, move |_ctx: OpContext, _active| {
            let path = config_path.clone();
            async move { load(&path).await }
        })
        .status(move |_ctx| std::future::ready(reporting.status()))
        .log_file(&log)
        .work_tracker(&work)
        .bind()?
        .spawn();
    tracing::info!("serving on {service}");

    let serving = async {
        loop {
            // Listen until a drain begins, then close the listener; open it again on resume.
            let listener = tokio::net::UnixListener::bind(service)?;
            loop {
                tokio::select! {
                    () = work.draining() => break,
                    accepted = listener.accept() => {
                        let (mut client, _) = accepted?;
                        let Some(unit) = work.begin() else { break };
                        let greeting = daemon.greeting.get();
                        client.write_all(format!("{}\n", greeting.0).as_bytes()).await?;
                        daemon.greeted.fetch_add(1, Ordering::Relaxed);
                        drop(unit);
                    }
                }
            }
            drop(listener);
            std::fs::remove_file(service)?;
            tracing::info!("draining: listener closed");
            work.resumed().await;
            tracing::info!("resumed: listening again");
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = serving => result?,
        _ = term.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
