//! An idle process for measuring what embedding the control server costs (`bench/footprint.sh`):
//!
//! - `idle baseline SOCKET`: a tokio current-thread runtime that waits, no server;
//! - `idle spawn SOCKET`: the same, serving the control plane on that runtime;
//! - `idle start SOCKET`: the same, serving on the server's own thread and runtime.
//!
//! It prints `ready` once set up, then does nothing until killed.

use control_server::Server;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let socket = PathBuf::from(
        args.next()
            .expect("usage: idle baseline|spawn|start SOCKET"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let builder = Server::builder("idle").socket_path(&socket);
    let _keep = match mode.as_str() {
        "baseline" => None,
        "spawn" => Some(Ok(
            runtime.block_on(async { builder.bind().unwrap().spawn() })
        )),
        "start" => Some(Err(builder.bind().unwrap().start().unwrap())),
        other => panic!("unknown mode {other:?}: baseline, spawn or start"),
    };
    println!("ready");
    runtime.block_on(std::future::pending::<()>());
}
