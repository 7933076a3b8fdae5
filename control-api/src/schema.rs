//! The built-in protocol as JSON Schema, and the check that keeps it add-only.
//!
//! `control-api/protocol.schema.json` is a committed snapshot of [`protocol`]; a test compares
//! the two with [`only_grows`]: an operation, field, variant or enum value that is in the
//! snapshot must still be there, with the same type. Anything added passes. After an addition,
//! regenerate the snapshot with `UPDATE_PROTOCOL_SCHEMA=1 cargo test -p control-api schema`.

use crate::command::schema_of;
use crate::*;
use serde_json::{json, Map, Value};

/// Every built-in operation with the schemas of its request and reply (those added later travel
/// inside `call`), and the error.
pub fn protocol() -> Value {
    let mut ops: Map<String, Value> = crate::builtin::all()
        .into_iter()
        .map(|(name, schemas)| (name.to_owned(), schemas))
        .collect();
    let call = json!({"request": schema_of::<CallRequest>(), "reply": schema_of::<CallReply>()});
    ops.insert("call".into(), call);
    json!({
        "protocol": PROTOCOL_VERSION,
        "operations": ops,
        "error": schema_of::<OpError>(),
    })
}

/// Whether `new` keeps everything `old` has: every object key (operations, properties,
/// definitions), every enum and `const` value, every `type`; the paths of what went missing.
pub fn only_grows(old: &Value, new: &Value) -> Result<(), Vec<String>> {
    let mut lost = Vec::new();
    walk("", old, new, &mut lost);
    if lost.is_empty() {
        Ok(())
    } else {
        Err(lost)
    }
}

fn walk(path: &str, old: &Value, new: &Value, lost: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, old_value) in old {
                let here = format!("{path}/{key}");
                // Doc text may change freely; `required` may lose names (a field made optional).
                if matches!(key.as_str(), "description" | "title" | "required") {
                    continue;
                }
                match new.get(key) {
                    None => lost.push(format!("{here}: removed or renamed")),
                    Some(new_value) => walk(&here, old_value, new_value, lost),
                }
            }
        }
        // Variants (`oneOf`), enum values and type lists: each old one must still be there.
        (Value::Array(old), Value::Array(new)) => {
            for (i, item) in old.iter().enumerate() {
                if !new.iter().any(|n| only_grows(item, n).is_ok()) {
                    lost.push(format!("{path}/{i}: removed or changed: {item}"));
                }
            }
        }
        (old, new) if old != new => lost.push(format!("{path}: was {old}, now {new}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.schema.json");

    #[test]
    fn the_protocol_only_grows_from_the_committed_snapshot() {
        let now = protocol();
        if std::env::var_os("UPDATE_PROTOCOL_SCHEMA").is_some() {
            // Keys sorted, as the snapshot has always been: the diff shows only what changed.
            let text = serde_json::to_string_pretty(&sorted(&now)).unwrap() + "\n";
            std::fs::write(SNAPSHOT, text).unwrap();
        }
        let snapshot: Value = serde_json::from_str(
            &std::fs::read_to_string(SNAPSHOT).expect("the committed protocol.schema.json"),
        )
        .unwrap();
        if let Err(lost) = only_grows(&snapshot, &now) {
            panic!(
                "the protocol lost what the snapshot has; it may only grow:\n{}",
                lost.join("\n")
            );
        }
    }

    /// `value` with every object's keys in order (serde_json keeps insertion order here).
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let keys: BTreeMap<_, _> =
                    map.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
                Value::Object(keys.into_iter().collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }

    fn edited(edit: impl FnOnce(&mut Value)) -> Value {
        let mut schema = protocol();
        edit(&mut schema);
        schema
    }

    #[test]
    fn removing_or_renaming_an_operation_a_field_or_a_variant_fails() {
        let old = protocol();
        let removed_op = edited(|s| {
            s["operations"].as_object_mut().unwrap().remove("rotate");
        });
        assert!(only_grows(&old, &removed_op).is_err());
        let renamed_field = edited(|s| {
            let props = s["operations"]["reload"]["reply"]["properties"]
                .as_object_mut()
                .unwrap();
            let v = props.remove("generation").unwrap();
            props.insert("gen".into(), v);
        });
        let lost = only_grows(&old, &renamed_field).unwrap_err();
        assert!(lost[0].contains("generation"), "{lost:?}");
        let retyped = edited(|s| {
            s["operations"]["drain"]["reply"]["properties"]["completed"]["type"] = "string".into();
        });
        assert!(only_grows(&old, &retyped).is_err());
        let variant_gone = edited(|s| {
            s["error"]["oneOf"].as_array_mut().unwrap().remove(0);
        });
        assert!(only_grows(&old, &variant_gone).is_err());
    }

    #[test]
    fn adding_an_operation_a_field_or_a_variant_passes() {
        let old = protocol();
        let grown = edited(|s| {
            s["operations"]["teleport"] = json!({"request": {}, "reply": {}});
            s["operations"]["reload"]["reply"]["properties"]["took_ms"] =
                json!({"type": "integer"});
            s["error"]["oneOf"]
                .as_array_mut()
                .unwrap()
                .push(json!({"properties": {"kind": {"const": "quota"}}}));
            s["operations"]["status"]["reply"]["description"] = "reworded".into();
        });
        only_grows(&old, &grown).unwrap();
    }
}
