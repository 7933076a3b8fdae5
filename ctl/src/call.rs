//! `ctl call`: the command's arguments built from KEY=VALUE and `--args`, typed and checked by
//! the schema the daemon's `describe` gave, before anything is sent.

use crate::cli::CallArgs;
use crate::error::CtlError;
use control_api::{args, Description, OpError, OperationInfo, OperationKind};
use serde_json::{Map, Value};

/// The command `call.command` as `describe` lists it; an unknown one is `unsupported` (exit 3),
/// listing the daemon's commands.
pub fn find<'a>(described: &'a Description, command: &str) -> Result<&'a OperationInfo, CtlError> {
    let commands = described
        .operations
        .iter()
        .filter(|op| op.kind == OperationKind::Command);
    if let Some(info) = commands.clone().find(|op| op.name == command) {
        return Ok(info);
    }
    Err(CtlError::Op(OpError::Unsupported {
        operation: command.to_owned(),
        supported: commands.map(|op| op.name.clone()).collect(),
    }))
}

/// The arguments to send: `--args` first, then each KEY=VALUE typed by the schema; an argument
/// that does not fit is `bad_arguments` (exit 2) naming it.
pub fn arguments(call: &CallArgs, info: &OperationInfo) -> Result<Value, CtlError> {
    let bad = |field: &str, expected: String, message: String| {
        CtlError::Op(OpError::BadArguments {
            command: info.name.clone(),
            field: field.to_owned(),
            expected,
            message,
        })
    };
    let not_an_object = |message| bad("", "a JSON object".into(), message);
    let mut map = match call.args.as_deref().map(serde_json::from_str) {
        None => Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(_)) => return Err(not_an_object("--args is not an object".into())),
        Some(Err(e)) => return Err(not_an_object(format!("--args: {e}"))),
    };
    for pair in &call.pairs {
        let Some((key, text)) = pair.split_once('=') else {
            return Err(bad(
                pair,
                "KEY=VALUE".into(),
                "an argument without `=`".into(),
            ));
        };
        let value = args::parse_value(&info.args, key, text)
            .map_err(|e| bad(&e.field, e.expected, e.message))?;
        map.insert(key.to_owned(), value);
    }
    let value = Value::Object(map);
    args::check(&info.args, &value).map_err(|e| bad(&e.field, e.expected, e.message))?;
    Ok(value)
}
