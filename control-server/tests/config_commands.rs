//! A command that changes the configuration registered with `reloadable` moves its generation
//! and shows in `status` as the last reload, as a `reload` would; one that changes nothing
//! moves nothing.

use control_api::schemars::JsonSchema;
use control_api::serde::{Deserialize, Serialize};
use control_api::{Access, Client, Command, StatusRequest};
use control_server::{Changes, OpContext, Reloadable, Server};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, PartialEq)]
struct Config {
    workers: u32,
}

impl Changes for Config {
    fn changes_from(&self, old: &Self) -> String {
        format!("workers {} -> {}", old.workers, self.workers)
    }
}

/// `set-workers n=N`: changes the configuration without a file.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(crate = "control_api::serde")]
#[schemars(crate = "control_api::schemars")]
struct SetWorkers {
    n: u32,
}

impl Command for SetWorkers {
    const NAME: &'static str = "set-workers";
    const DOC: &'static str = "Set the number of workers";
    const ACCESS: Access = Access::Operate;
    type Reply = u32;
}

#[tokio::test(flavor = "current_thread")]
async fn a_command_that_replaces_the_configuration_moves_its_generation_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("workers.sock");
    let config = Arc::new(Reloadable::new(Config { workers: 4 }));
    let from_file = |_: OpContext, _: Arc<Config>| async { Ok(Config { workers: 4 }) };
    let changing = config.clone();
    let server = Server::builder("workers")
        .reloadable(&config, from_file)
        .command(move |_ctx, req: SetWorkers| {
            let config = changing.clone();
            async move {
                let swapped = config
                    .try_replace(|_| Ok::<_, std::convert::Infallible>(Config { workers: req.n }))
                    .unwrap();
                Ok(swapped.new.workers)
            }
        })
        .socket_path(&socket)
        .bind()
        .unwrap()
        .spawn();
    let client = Client::connect(&socket)
        .await
        .unwrap()
        .timeout(Duration::from_secs(10));
    let status = client.call(&StatusRequest::default()).await.unwrap();
    assert_eq!(status.config_generation, 1);
    assert!(status.last_reload.is_none());

    assert_eq!(client.call(&SetWorkers { n: 8 }).await.unwrap(), 8);
    let status = client.call(&StatusRequest::default()).await.unwrap();
    assert_eq!(
        status.config_generation, 2,
        "the command moved the generation"
    );
    let last = status.last_reload.expect("recorded as the last reload");
    assert!(last.ok);
    assert_eq!(
        (last.generation, last.message.as_str()),
        (2, "workers 4 -> 8")
    );

    // The same value again: nothing changed, nothing moves.
    client.call(&SetWorkers { n: 8 }).await.unwrap();
    let status = client.call(&StatusRequest::default()).await.unwrap();
    assert_eq!(status.config_generation, 2);
    // A reload from the file moves it on from there, as it would after a reload.
    let reloaded = client
        .call(&control_api::ReloadRequest::default())
        .await
        .unwrap();
    assert_eq!(
        (reloaded.generation, reloaded.summary.as_str()),
        (3, "workers 8 -> 4")
    );
    server.shutdown().await;
}
