//! A daemon that does not use tokio: a `std::net` TCP service, a thread per client, and the
//! control server on a thread of its own ([`Server::start`]). It has no `tracing` subscriber,
//! so the server's own lines reach stderr (it says so once). `drain` closes its listener,
//! waiting for the clients in flight; `resume` opens it again: two threads blocked in
//! [`WorkTracker::block_until_draining`] and [`WorkTracker::block_until_resumed`] learn of it,
//! with no runtime and no polling.
//!
//! ```text
//! blocking NAME PORT_FILE
//! ```
//!
//! It listens on 127.0.0.1 at a port of the system's choosing, written to PORT_FILE each time it
//! opens the listener. Each client gets one line, `hello NAME`. The control socket follows the
//! convention for NAME (`CTL_SOCKET_DIR` overrides it).

use control_server::{Server, WorkTracker};
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;

/// What `accept` says of a listening socket that was shut down.
const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, port_file] = &args[..] else {
        return Err("usage: blocking NAME PORT_FILE".into());
    };
    let work = WorkTracker::new();
    // Registering the tracker is all `drain`, `resume` and status's `in_flight` need.
    let server = Server::builder(name.as_str())
        .work_tracker(&work)
        .bind()?
        .start()?;
    serve(name, Path::new(port_file), &work)?;
    server.shutdown();
    Ok(())
}

/// Accepts clients until a drain begins; opens the listener again on resume. Forever.
fn serve(name: &str, port_file: &Path, work: &WorkTracker) -> std::io::Result<()> {
    loop {
        work.block_until_resumed(None);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        write_port(port_file, listener.local_addr()?.port())?;
        // The thread that wakes `accept` below when a drain begins: shutting a listening
        // socket down makes a blocked `accept` return at once.
        let waker = {
            let work = work.clone();
            let listener = listener.try_clone()?;
            std::thread::spawn(move || {
                work.block_until_draining(None);
                let _ = rustix::net::shutdown(listener.as_fd(), rustix::net::Shutdown::Read);
            })
        };
        for client in listener.incoming() {
            let client = match client {
                Ok(client) => client,
                // Shut down by the waker (EINVAL from then on), or a drain under way.
                Err(e) if e.raw_os_error() == Some(EINVAL) || work.is_draining() => break,
                // Out of descriptors, a client gone before it was accepted: back off, go on.
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            // Counted while it is served; refused once a drain has begun.
            let Some(guard) = work.begin() else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            let name = name.to_owned();
            std::thread::spawn(move || {
                greet(client, &name);
                drop(guard);
            });
        }
        drop(listener);
        let _ = waker.join();
    }
}

fn greet(mut client: TcpStream, name: &str) {
    let _ = writeln!(client, "hello {name}");
}

/// Written whole, then renamed into place: a reader never sees half of it.
fn write_port(path: &Path, port: u16) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{port}\n"))?;
    std::fs::rename(partial, path)
}
