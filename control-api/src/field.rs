//! Typed status fields: the daemon's own values in `status`, as numbers, booleans, durations or
//! text, in the daemon's order.
//!
//! On the wire a field is `{"name": N, "type": T, "value": V}` with T one of `integer`,
//! `unsigned`, `float`, `bool`, `string`, `duration` (V is then `{"secs", "nanos"}`). A type this
//! build does not know decodes as [`FieldValue::Unrecognized`], and a value that does not fit its
//! type likewise, so one odd field never makes a whole `status` reply unreadable.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// One of the daemon's own `status` fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawField", into = "RawField")]
pub struct StatusField {
    /// The field's name, e.g. `lines_written`.
    pub name: String,
    /// Its value.
    pub value: FieldValue,
}

impl StatusField {
    /// A field named `name` holding `value`.
    pub fn new(name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        StatusField {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The value of a [`StatusField`]. Its [`Display`](fmt::Display) form is what the untyped
/// `fields` map of `status` carries, for clients that predate typed fields.
#[derive(Clone, Debug)]
pub enum FieldValue {
    /// A signed integer.
    Integer(i64),
    /// An unsigned integer (counters).
    Unsigned(u64),
    /// A floating-point number. NaN and infinities cross the wire as `null` and come back as NaN.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    String(String),
    /// A length of time (an interval, an age, a timeout).
    Duration(Duration),
    /// A type a newer daemon sent that this build does not know (its wire name), or a value
    /// that did not fit its type.
    Unrecognized(String),
}

/// Floats compare by [`f64::total_cmp`], so that equality is an equivalence (NaN equals NaN)
/// and [`Status`](crate::Status) can stay `Eq`.
impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        use FieldValue::*;
        match (self, other) {
            (Integer(a), Integer(b)) => a == b,
            (Unsigned(a), Unsigned(b)) => a == b,
            (Float(a), Float(b)) => a.total_cmp(b).is_eq(),
            (Bool(a), Bool(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Duration(a), Duration(b)) => a == b,
            (Unrecognized(a), Unrecognized(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for FieldValue {}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Integer(n) => write!(f, "{n}"),
            FieldValue::Unsigned(n) => write!(f, "{n}"),
            FieldValue::Float(x) => write!(f, "{x}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::String(s) => f.write_str(s),
            FieldValue::Duration(d) => f.write_str(&format_duration(*d)),
            FieldValue::Unrecognized(kind) => write!(f, "({kind}: upgrade the client to see it)"),
        }
    }
}

/// A duration as people read it: `50ms`, `1.5s`, `2m 30s`, `1h 5m`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        // Debug picks the unit (ns, µs, ms, s) and prints only the digits that are there.
        return format!("{d:?}");
    }
    let parts: Vec<String> = [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")]
        .into_iter()
        .filter(|&(n, _)| n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    parts.join(" ")
}

// `as` for usize and isize, which have no `From` into u64 and i64.
macro_rules! from_value {
    ($($t:ty => $variant:ident $(as $wide:ty)?),* $(,)?) => {$(
        impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$variant((v $(as $wide)?).into())
            }
        }
    )*};
}

from_value! {
    i64 => Integer, i32 => Integer, i16 => Integer, i8 => Integer, isize => Integer as i64,
    u64 => Unsigned, u32 => Unsigned, u16 => Unsigned, u8 => Unsigned, usize => Unsigned as u64,
    f64 => Float, f32 => Float,
    bool => Bool,
    String => String, &str => String,
    Duration => Duration,
}

/// The wire form, read leniently: any `type` and any `value` decode.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: Value,
}

/// The schema is the wire form's: a name, a type word and any value.
impl schemars::JsonSchema for StatusField {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusField".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawField::json_schema(generator)
    }
}

impl From<StatusField> for RawField {
    fn from(field: StatusField) -> Self {
        let (kind, value) = match field.value {
            FieldValue::Integer(n) => ("integer".into(), n.into()),
            FieldValue::Unsigned(n) => ("unsigned".into(), n.into()),
            // serde_json writes a non-finite float as null.
            FieldValue::Float(x) => ("float".into(), x.into()),
            FieldValue::Bool(b) => ("bool".into(), b.into()),
            FieldValue::String(s) => ("string".into(), s.into()),
            FieldValue::Duration(d) => (
                "duration".into(),
                serde_json::json!({"secs": d.as_secs(), "nanos": d.subsec_nanos()}),
            ),
            FieldValue::Unrecognized(kind) => (kind, Value::Null),
        };
        RawField {
            name: field.name,
            kind,
            value,
        }
    }
}

impl From<RawField> for StatusField {
    fn from(raw: RawField) -> Self {
        let v = &raw.value;
        let value = match raw.kind.as_str() {
            "integer" => v.as_i64().map(FieldValue::Integer),
            "unsigned" => v.as_u64().map(FieldValue::Unsigned),
            "float" if v.is_null() => Some(FieldValue::Float(f64::NAN)),
            "float" => v.as_f64().map(FieldValue::Float),
            "bool" => v.as_bool().map(FieldValue::Bool),
            "string" => v.as_str().map(|s| FieldValue::String(s.to_owned())),
            "duration" => serde_json::from_value::<Duration>(v.clone())
                .ok()
                .map(FieldValue::Duration),
            _ => None,
        };
        StatusField {
            name: raw.name,
            value: value.unwrap_or(FieldValue::Unrecognized(raw.kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(field: StatusField) -> String {
        let json = serde_json::to_string(&field).unwrap();
        let back: StatusField = serde_json::from_str(&json).unwrap();
        assert_eq!(back, field, "{json}");
        json
    }

    #[test]
    fn every_type_round_trips_with_its_tag() {
        assert_eq!(
            round_trip(StatusField::new("n", -3)),
            r#"{"name":"n","type":"integer","value":-3}"#
        );
        assert_eq!(
            round_trip(StatusField::new("n", u64::MAX)),
            format!(r#"{{"name":"n","type":"unsigned","value":{}}}"#, u64::MAX)
        );
        round_trip(StatusField::new("x", 0.25));
        round_trip(StatusField::new("b", true));
        round_trip(StatusField::new("s", "hi"));
        round_trip(StatusField::new("d", Duration::from_millis(1500)));
        assert_eq!(
            serde_json::to_value(StatusField::new("d", Duration::from_millis(1500))).unwrap(),
            serde_json::json!({"name": "d", "type": "duration", "value": {"secs": 1, "nanos": 500_000_000}})
        );
        // NaN is written as null and read back as NaN.
        round_trip(StatusField::new("x", f64::NAN));
    }

    #[test]
    fn an_unknown_type_or_a_value_that_does_not_fit_is_unrecognized_not_an_error() {
        let field: StatusField =
            serde_json::from_str(r#"{"name":"t","type":"timestamp","value":{"unix":1}}"#).unwrap();
        assert_eq!(field.value, FieldValue::Unrecognized("timestamp".into()));
        let field: StatusField =
            serde_json::from_str(r#"{"name":"n","type":"integer","value":"many"}"#).unwrap();
        assert_eq!(field.value, FieldValue::Unrecognized("integer".into()));
        assert!(serde_json::from_str::<StatusField>(r#"{"type":"integer"}"#).is_err());
    }

    #[test]
    fn display_is_the_untyped_form() {
        assert_eq!(FieldValue::from(42u64).to_string(), "42");
        assert_eq!(FieldValue::from(-1).to_string(), "-1");
        assert_eq!(FieldValue::from(1.5).to_string(), "1.5");
        assert_eq!(FieldValue::from(false).to_string(), "false");
        assert_eq!(FieldValue::from("a b").to_string(), "a b");
        assert_eq!(
            FieldValue::from(Duration::from_millis(50)).to_string(),
            "50ms"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(50)), "50ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(150)), "2m 30s");
        assert_eq!(format_duration(Duration::from_secs(3900)), "1h 5m");
        assert_eq!(format_duration(Duration::ZERO), "0ns");
    }
}
