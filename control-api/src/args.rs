//! Arguments checked against a command's JSON Schema, the same way by `ctl` (before sending)
//! and by the daemon (before decoding): an unknown name, a missing one or a value of the wrong
//! type is named, with what was expected.
//!
//! Only the top level is checked field by field (what `KEY=VALUE` can write); what is inside a
//! list or an object is left to the command's own decoding.

use serde_json::{Map, Value};

/// An argument that does not fit: which one, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("argument `{field}`: {message}; expected {expected}")]
pub struct ArgError {
    /// The argument's name (empty when the arguments as a whole are wrong).
    pub field: String,
    /// What would have fitted, in words (`a string`, `one of: text`).
    pub expected: String,
    /// What was wrong.
    pub message: String,
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// One argument of a command, as its schema gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argument {
    /// Its name: the `KEY` of `KEY=VALUE`.
    pub name: String,
    /// Its type in short ([`type_name`]).
    pub type_name: String,
    /// Whether a call must give it.
    pub required: bool,
    /// The schema's description (the field's doc comment), empty when it has none.
    pub description: String,
}

/// The arguments, in the schema's order.
pub fn arguments(schema: &Value) -> Vec<Argument> {
    let required = required(schema);
    properties(schema)
        .into_iter()
        .flatten()
        .map(|(name, prop)| Argument {
            name: name.clone(),
            type_name: type_name(prop),
            required: required.contains(name),
            description: prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

fn required(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The JSON types a property allows; empty when the schema does not say (a `$ref`, `anyOf`).
fn types(prop: &Value) -> Vec<&str> {
    match prop.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A short name for a property's type: `string`, `integer`, `list of string`, `string?`.
pub fn type_name(prop: &Value) -> String {
    let ts = types(prop);
    let optional = ts.contains(&"null");
    let base = match ts.iter().find(|t| **t != "null") {
        Some(&"array") => format!(
            "list of {}",
            prop.get("items").map_or("any".to_owned(), type_name)
        ),
        Some(t) => (*t).to_owned(),
        None => "any".to_owned(),
    };
    if optional {
        format!("{base}?")
    } else {
        base
    }
}

/// The whole numbers an integer property takes: from its `format` (`uint32`, `int8`, ...: the
/// Rust type it decodes into) and its `minimum` and `maximum`, the narrowest of them.
fn range(prop: &Value) -> (i128, i128) {
    let by_format = match prop.get("format").and_then(Value::as_str) {
        Some("uint8") => (0, u8::MAX as i128),
        Some("uint16") => (0, u16::MAX as i128),
        Some("uint32") => (0, u32::MAX as i128),
        Some("uint64" | "uint") => (0, u64::MAX as i128),
        Some("int8") => (i8::MIN as i128, i8::MAX as i128),
        Some("int16") => (i16::MIN as i128, i16::MAX as i128),
        Some("int32") => (i32::MIN as i128, i32::MAX as i128),
        _ => (i64::MIN as i128, u64::MAX as i128),
    };
    let bound = |key: &str| prop.get(key).and_then(Value::as_f64).map(|b| b as i128);
    let low = bound("minimum").map_or(by_format.0, |m| m.max(by_format.0));
    let high = bound("maximum").map_or(by_format.1, |m| m.min(by_format.1));
    (low, high)
}

fn whole_numbers(prop: &Value) -> String {
    match range(prop) {
        (0, high) if high == u64::MAX as i128 => "a whole number, 0 or more".into(),
        (low, high) if (low, high) == (i64::MIN as i128, u64::MAX as i128) => {
            "a whole number".into()
        }
        (low, high) => format!("a whole number from {low} to {high}"),
    }
}

fn expected(prop: &Value) -> String {
    match types(prop).into_iter().find(|t| *t != "null") {
        Some("string") => "a string".into(),
        Some("integer") => whole_numbers(prop),
        Some("number") => "a number".into(),
        Some("boolean") => "true or false".into(),
        Some("array") => format!(
            "a list of {}",
            prop.get("items").map_or("values".to_owned(), type_name)
        ),
        Some("object") => "an object".into(),
        _ => "a value".into(),
    }
}

fn fits(prop: &Value, value: &Value) -> bool {
    let ts = types(prop);
    if ts.is_empty() {
        return true;
    }
    let whole = || {
        let n = value
            .as_i64()
            .map(i128::from)
            .or(value.as_u64().map(i128::from))?;
        let (low, high) = range(prop);
        Some((low..=high).contains(&n))
    };
    ts.iter().any(|t| match *t {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "integer" => whole() == Some(true),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.as_array().is_some_and(|items| {
            let item = prop.get("items").unwrap_or(&Value::Null);
            items.iter().all(|v| fits(item, v))
        }),
        "object" => value.is_object(),
        _ => true,
    })
}

/// Checks `args` (an object, or null for none) against `schema`, the JSON Schema of a command's
/// request: every name known, every required one present, every value of its type.
pub fn check(schema: &Value, args: &Value) -> Result<(), ArgError> {
    let empty = Map::new();
    let given = match args {
        Value::Null => &empty,
        Value::Object(map) => map,
        _ => {
            return Err(ArgError {
                field: String::new(),
                expected: "an object of named arguments".into(),
                message: "the arguments are not an object".into(),
            })
        }
    };
    let props = properties(schema).unwrap_or(&empty);
    for (name, value) in given {
        let prop = property(props, name)?;
        if !fits(prop, value) {
            return Err(misfit(name, prop, format!("{value} does not fit")));
        }
    }
    for name in required(schema) {
        if !given.contains_key(&name) {
            let prop = props.get(&name).unwrap_or(&Value::Null);
            return Err(misfit(&name, prop, "missing".into()));
        }
    }
    Ok(())
}

/// The property `name` of `props`, or the error of an unknown argument, naming those known.
fn property<'a>(props: &'a Map<String, Value>, name: &str) -> Result<&'a Value, ArgError> {
    props.get(name).ok_or_else(|| ArgError {
        field: name.to_owned(),
        expected: if props.is_empty() {
            "no arguments".into()
        } else {
            let names: Vec<&str> = props.keys().map(String::as_str).collect();
            format!("one of: {}", names.join(", "))
        },
        message: "unknown argument".into(),
    })
}

/// The value `text` (from `KEY=VALUE`) stands for, typed by the argument's schema: a number, a
/// boolean, a string, or a comma-separated list.
pub fn parse_value(schema: &Value, field: &str, text: &str) -> Result<Value, ArgError> {
    let empty = Map::new();
    let prop = property(properties(schema).unwrap_or(&empty), field)?;
    let value = typed(prop, text);
    if fits(prop, &value) {
        Ok(value)
    } else {
        Err(misfit(field, prop, format!("`{text}` does not fit")))
    }
}

/// The error of the argument `field`, whose schema is `prop`: `message`, and what would fit.
fn misfit(field: &str, prop: &Value, message: String) -> ArgError {
    ArgError {
        field: field.to_owned(),
        expected: expected(prop),
        message,
    }
}

fn typed(prop: &Value, text: &str) -> Value {
    let ts = types(prop);
    if ts.contains(&"array") {
        let item = prop.get("items").unwrap_or(&Value::Null);
        let items = if text.is_empty() {
            Vec::new()
        } else {
            text.split(',').map(|part| typed(item, part)).collect()
        };
        return Value::Array(items);
    }
    if ts.contains(&"string") {
        return Value::String(text.to_owned());
    }
    // A number, boolean or null reads as JSON; anything else stays text and fails the check.
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "count": {"type": "integer", "minimum": 0},
                "loud": {"type": ["boolean", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["text"]
        })
    }

    #[test]
    fn fitting_arguments_pass() {
        check(&schema(), &json!({"text": "hi", "count": 3, "tags": ["a"]})).unwrap();
        check(&schema(), &json!({"text": "hi", "loud": null})).unwrap();
    }

    #[test]
    fn an_unknown_missing_or_mistyped_argument_is_named() {
        let err = check(&schema(), &json!({"text": "hi", "colour": 1})).unwrap_err();
        assert_eq!(err.field, "colour");
        assert!(err.expected.contains("text"), "{err}");
        let err = check(&schema(), &json!({"count": 1})).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            ("text", "missing")
        );
        let err = check(&schema(), &json!({"text": "hi", "count": -1})).unwrap_err();
        assert_eq!(err.field, "count");
        assert_eq!(err.expected, "a whole number, 0 or more");
        assert!(check(&schema(), &json!([1])).is_err());
    }

    #[test]
    fn key_value_text_is_typed_by_the_schema() {
        let s = schema();
        assert_eq!(parse_value(&s, "text", "42").unwrap(), json!("42"));
        assert_eq!(parse_value(&s, "count", "42").unwrap(), json!(42));
        assert_eq!(parse_value(&s, "loud", "true").unwrap(), json!(true));
        assert_eq!(parse_value(&s, "tags", "a,b").unwrap(), json!(["a", "b"]));
        assert_eq!(parse_value(&s, "count", "many").unwrap_err().field, "count");
        assert_eq!(parse_value(&s, "nope", "1").unwrap_err().field, "nope");
    }

    #[test]
    fn arguments_are_listed_with_type_whether_required_and_description() {
        let mut s = schema();
        s["properties"]["text"]["description"] = "What to say.".into();
        let args = arguments(&s);
        let of = |name: &str| args.iter().find(|a| a.name == name).unwrap().clone();
        assert_eq!(
            (
                of("text").type_name,
                of("text").required,
                of("text").description
            ),
            ("string".into(), true, "What to say.".into())
        );
        assert_eq!(
            (of("loud").type_name, of("loud").required),
            ("boolean?".into(), false)
        );
        assert_eq!(of("tags").type_name, "list of string");
        assert_eq!(of("tags").description, "");
    }

    /// A number the command's Rust type cannot hold is refused here, naming the argument,
    /// not by the daemon's decoding with no field named.
    #[test]
    fn a_whole_number_out_of_its_types_range_is_refused_naming_the_argument() {
        let s = json!({
            "type": "object",
            "properties": {
                "max": {"type": "integer", "format": "uint32", "minimum": 0},
                "delta": {"type": "integer", "format": "int8"},
                "pct": {"type": "integer", "format": "uint8", "minimum": 0, "maximum": 100},
            }
        });
        check(
            &s,
            &json!({"max": 4_294_967_295u64, "delta": -128, "pct": 100}),
        )
        .unwrap();
        for (field, value, says) in [
            (
                "max",
                json!(99_999_999_999u64),
                "a whole number from 0 to 4294967295",
            ),
            ("max", json!(-1), "a whole number from 0 to 4294967295"),
            ("delta", json!(128), "a whole number from -128 to 127"),
            ("pct", json!(101), "a whole number from 0 to 100"),
            ("pct", json!(1.5), "a whole number from 0 to 100"),
        ] {
            let err = check(&s, &json!({ field: value })).unwrap_err();
            assert_eq!((err.field.as_str(), err.expected.as_str()), (field, says));
        }
        let err = parse_value(&s, "max", "99999999999").unwrap_err();
        assert_eq!(err.field, "max");
        assert!(err.to_string().contains("4294967295"), "{err}");
    }
}
