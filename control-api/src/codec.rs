//! The frozen edge of the wire: the requests and replies of the [`Control`](crate::Control)
//! service as one operation name with JSON arguments in, one JSON result out.
//!
//! Both sides dispatch by name: the server's registry runs an [`Invocation`] and answers an
//! [`Answer`]; [`Client::call`](crate::Client::call) sends any [`Command`], built-in or the
//! daemon's own. The bytes are those of [`ControlRequest`](crate::ControlRequest) and
//! [`ControlResponse`](crate::ControlResponse), which stay as the documented form: the ten
//! operations of the first releases keep their tarpc methods ([`METHODS`], never added to), and
//! every later operation travels inside `call`, by name, so that adding one changes nothing here.
//!
//! ```
//! use control_api::codec::{Carrier, Invocation};
//! use control_api::{ControlRequest, StatusRequest};
//!
//! let status = Invocation::of(&StatusRequest::default()).unwrap();
//! assert_eq!(status.carrier, Carrier::Method("status"));
//! let typed = ControlRequest::Status { req: StatusRequest::default() };
//! assert_eq!(serde_json::to_string(&status).unwrap(), serde_json::to_string(&typed).unwrap());
//! ```

use crate::command::{CallReply, CallRequest, Command};
use crate::error::OpError;
use crate::{Hello, PROTOCOL_VERSION};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The operations with a tarpc method of their own: variant name, operation name. Frozen: an
/// operation added later travels inside `call` and is not listed here.
pub const METHODS: [(&str, &str); 10] = [
    ("Hello", "hello"),
    ("Status", "status"),
    ("Reload", "reload"),
    ("Rotate", "rotate"),
    ("Drain", "drain"),
    ("LogLevel", "log-level"),
    ("Resume", "resume"),
    ("Describe", "describe"),
    ("Check", "check"),
    ("Counters", "counters"),
];

/// The variant of the generic method.
const CALL: &str = "Call";

const VARIANTS: [&str; 11] = [
    "Hello", "Status", "Reload", "Rotate", "Drain", "LogLevel", "Resume", "Describe", "Check",
    "Counters", CALL,
];

/// How a call travels on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// The tarpc method of the named operation (one of [`METHODS`]).
    Method(&'static str),
    /// Inside the generic `call`, by name.
    Call,
}

impl Carrier {
    /// How the operation `name` travels: its own method if it has one, else `call`.
    pub fn of(name: &str) -> Carrier {
        METHODS
            .iter()
            .find(|(_, op)| *op == name)
            .map_or(Carrier::Call, |(_, op)| Carrier::Method(op))
    }

    /// The operation name of a method, `call` for the generic one.
    pub fn name(self) -> &'static str {
        match self {
            Carrier::Method(op) => op,
            Carrier::Call => "call",
        }
    }

    fn variant(self) -> &'static str {
        METHODS
            .iter()
            .find(|(_, op)| Carrier::Method(op) == self)
            .map_or(CALL, |(variant, _)| variant)
    }

    fn of_variant(variant: &str) -> Option<Carrier> {
        if variant == CALL {
            return Some(Carrier::Call);
        }
        METHODS
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, op)| Carrier::Method(op))
    }
}

/// One call: the operation's name, its arguments, and how it travels.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The operation or command (`status`, `set-message`).
    pub name: String,
    /// Its arguments: the request struct as JSON.
    pub args: Value,
    /// Its method, or `call`.
    pub carrier: Carrier,
}

impl Invocation {
    /// A call of `C` with `request`, on the carrier its name has.
    pub fn of<C: Command>(request: &C) -> Result<Invocation, serde_json::Error> {
        Ok(Invocation {
            name: C::NAME.to_owned(),
            args: serde_json::to_value(request)?,
            carrier: Carrier::of(C::NAME),
        })
    }
}

impl tarpc::RequestName for Invocation {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The reply to one call: the carrier it answers and the operation's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The method answered, or `call`.
    pub carrier: Carrier,
    /// The reply struct as JSON, or why there is none.
    pub result: Result<Value, OpError>,
    /// Whether the call changed anything ([`Command::changed`]), beside a successful reply of
    /// `call` ([`CallReply::changed`]); the methods have no place for it on the wire, and it
    /// is always `None` for them.
    pub changed: Option<bool>,
}

impl Answer {
    /// The answer to a call on `carrier`: `result`, and beside it (for `call` only) `changed`.
    pub fn new(carrier: Carrier, result: Result<Value, OpError>, changed: Option<bool>) -> Self {
        let changed = changed.filter(|_| carrier == Carrier::Call && result.is_ok());
        Answer {
            carrier,
            result,
            changed,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Req<T> {
    req: T,
}

#[derive(Serialize)]
struct CallOut<'a> {
    command: &'a str,
    args: &'a Value,
}

/// [`CallReply`], borrowed: `changed` only when said, so that the bytes of a command that does
/// not say are those of the first releases.
#[derive(Serialize)]
struct ReplyOut<'a> {
    reply: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
}

// Each writes the one `{"Variant": body}` entry of an externally tagged enum.
impl Serialize for Invocation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let variant = self.carrier.variant();
        match self.carrier {
            Carrier::Method(_) => s.collect_map([(variant, Req { req: &self.args })]),
            Carrier::Call => {
                let req = CallOut {
                    command: &self.name,
                    args: &self.args,
                };
                s.collect_map([(variant, Req { req })])
            }
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let variant = self.carrier.variant();
        match (self.carrier, &self.result) {
            // `hello` has no error on the wire: a failure answers a hello of this protocol
            // that names nothing, which every client can read.
            (Carrier::Method("hello"), Ok(hello)) => s.collect_map([(variant, hello)]),
            (Carrier::Method("hello"), Err(_)) => {
                let hello = Hello {
                    protocol: PROTOCOL_VERSION,
                    ..Hello::default()
                };
                s.collect_map([(variant, hello)])
            }
            (Carrier::Method(_), result) => s.collect_map([(variant, result)]),
            (Carrier::Call, Ok(reply)) => {
                let changed = self.changed;
                s.collect_map([(variant, Ok::<_, ()>(ReplyOut { reply, changed }))])
            }
            (Carrier::Call, Err(err)) => s.collect_map([(variant, Err::<(), _>(err))]),
        }
    }
}

/// Reads the one `{"Variant": body}` entry of an externally tagged enum.
fn one_entry<'de, A, T>(
    mut map: A,
    body: impl FnOnce(Carrier, &mut A) -> Result<T, A::Error>,
) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
{
    let variant: String = map
        .next_key()?
        .ok_or_else(|| de::Error::custom("an empty object, not a message of the protocol"))?;
    let carrier = Carrier::of_variant(&variant)
        .ok_or_else(|| de::Error::unknown_variant(&variant, &VARIANTS))?;
    let value = body(carrier, &mut map)?;
    if map.next_key::<IgnoredAny>()?.is_some() {
        return Err(de::Error::custom("a message names one operation"));
    }
    Ok(value)
}

struct InvocationVisitor;

impl<'de> Visitor<'de> for InvocationVisitor {
    type Value = Invocation;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request of the Control service")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Invocation, A::Error> {
        one_entry(map, |carrier, map| {
            Ok(match carrier {
                Carrier::Call => {
                    let Req { req } = map.next_value::<Req<CallRequest>>()?;
                    Invocation {
                        name: req.command,
                        args: req.args,
                        carrier,
                    }
                }
                // Every request struct is an object; anything else is not a request.
                Carrier::Method(op) => Invocation {
                    name: op.to_owned(),
                    args: Value::Object(map.next_value::<Req<Map<String, Value>>>()?.req),
                    carrier,
                },
            })
        })
    }
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Invocation, D::Error> {
        d.deserialize_map(InvocationVisitor)
    }
}

struct AnswerVisitor;

impl<'de> Visitor<'de> for AnswerVisitor {
    type Value = Answer;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a reply of the Control service")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Answer, A::Error> {
        one_entry(map, |carrier, map| {
            let (result, changed) = match carrier {
                Carrier::Method("hello") => (Ok(map.next_value::<Value>()?), None),
                Carrier::Method(_) => (map.next_value::<Result<Value, OpError>>()?, None),
                Carrier::Call => match map.next_value::<Result<CallReply, OpError>>()? {
                    Ok(CallReply { reply, changed }) => (Ok(reply), changed),
                    Err(err) => (Err(err), None),
                },
            };
            Ok(Answer {
                carrier,
                result,
                changed,
            })
        })
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Answer, D::Error> {
        d.deserialize_map(AnswerVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    /// One request of each method, typed as the first releases sent it.
    fn typed_requests() -> Vec<ControlRequest> {
        vec![
            ControlRequest::Hello {
                req: HelloRequest {
                    protocol: 1,
                    client: "ctl 1".into(),
                },
            },
            ControlRequest::Status {
                req: StatusRequest {},
            },
            ControlRequest::Reload {
                req: ReloadRequest {},
            },
            ControlRequest::Rotate {
                req: RotateRequest {},
            },
            ControlRequest::Drain {
                req: DrainRequest {},
            },
            ControlRequest::LogLevel {
                req: LogLevelRequest {
                    filter: Some("debug".into()),
                },
            },
            ControlRequest::Resume {
                req: ResumeRequest {},
            },
            ControlRequest::Describe {
                req: DescribeRequest {},
            },
            ControlRequest::Check {
                req: CheckRequest {},
            },
            ControlRequest::Counters {
                req: CountersRequest {
                    prefix: Some("ctl.".into()),
                },
            },
            ControlRequest::Call {
                req: CallRequest {
                    command: "set-message".into(),
                    args: serde_json::json!({"text": "hi"}),
                },
            },
        ]
    }

    #[test]
    fn every_typed_request_reads_as_its_invocation_and_writes_back_the_same_bytes() {
        let mut names = Vec::new();
        for typed in typed_requests() {
            let bytes = serde_json::to_string(&typed).unwrap();
            let invocation: Invocation = serde_json::from_str(&bytes).unwrap();
            assert_eq!(serde_json::to_string(&invocation).unwrap(), bytes);
            let back: ControlRequest = serde_json::from_str(&bytes).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), bytes);
            names.push(invocation.name);
        }
        let mut expected: Vec<_> = METHODS.iter().map(|(_, op)| op.to_string()).collect();
        expected.push("set-message".into());
        assert_eq!(names, expected);
    }

    #[test]
    fn every_typed_reply_reads_as_its_answer_and_writes_back_the_same_bytes() {
        let replies = vec![
            ControlResponse::Hello(Hello {
                protocol: 1,
                name: "demo".into(),
                version: "1".into(),
                pid: 7,
                operations: vec!["hello".into()],
            }),
            ControlResponse::Status(Err(OpError::ShuttingDown)),
            ControlResponse::Reload(Ok(ReloadReply {
                generation: 2,
                summary: "x".into(),
                joined: false,
                unchanged: false,
            })),
            ControlResponse::Rotate(Ok(RotateReply { files: vec![] })),
            ControlResponse::Drain(Ok(DrainReply {
                completed: true,
                in_flight: 0,
                resumed: false,
            })),
            ControlResponse::LogLevel(Ok(LogLevelReply {
                filter: "info".into(),
                previous: None,
            })),
            ControlResponse::Resume(Ok(ResumeReply { was_draining: true })),
            ControlResponse::Describe(Ok(Description { operations: vec![] })),
            ControlResponse::Check(Err(OpError::failed("bad"))),
            ControlResponse::Counters(Ok(CountersReply { counters: vec![] })),
            ControlResponse::Call(Ok(CallReply {
                reply: serde_json::json!({"n": 1}),
                changed: None,
            })),
            ControlResponse::Call(Ok(CallReply {
                reply: serde_json::json!({"n": 1}),
                changed: Some(false),
            })),
            ControlResponse::Call(Err(OpError::Busy { reason: "x".into() })),
        ];
        for typed in replies {
            let bytes = serde_json::to_string(&typed).unwrap();
            let answer: Answer = serde_json::from_str(&bytes).unwrap();
            assert_eq!(serde_json::to_string(&answer).unwrap(), bytes, "{answer:?}");
        }
    }

    #[test]
    fn the_methods_are_the_operations_of_the_committed_schema_and_new_ones_travel_in_call() {
        let snapshot: Value =
            serde_json::from_str(include_str!("../protocol.schema.json")).unwrap();
        let ops: Vec<&str> = snapshot["operations"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // The methods are the first built-ins, in the protocol's order, and carry themselves.
        let builtins: Vec<&str> = crate::builtin::all().iter().map(|(n, _)| *n).collect();
        assert_eq!(builtins[..METHODS.len()], METHODS.map(|(_, op)| op));
        for op in METHODS.map(|(_, op)| op) {
            assert_eq!(Carrier::of(op), Carrier::Method(op));
        }
        // Every built-in is in the snapshot; the rest of it travels inside `call`, as a
        // daemon's command does.
        for name in &builtins {
            assert!(ops.contains(name), "{name} is not in protocol.schema.json");
        }
        for op in ops
            .iter()
            .filter(|op| **op != "call" && !builtins[..10].contains(op))
        {
            assert_eq!(Carrier::of(op), Carrier::Call, "{op}");
        }
        assert_eq!(Carrier::of("flush-cache"), Carrier::Call);
    }

    #[test]
    fn what_is_not_one_request_of_the_protocol_does_not_decode() {
        for bad in [
            r#"{}"#,
            r#""Status""#,
            r#"{"Frobnicate":{"req":{}}}"#,
            r#"{"Status":{"req":5}}"#,
            r#"{"Status":{}}"#,
            r#"{"Status":{"req":{}},"Reload":{"req":{}}}"#,
            r#"[1]"#,
        ] {
            assert!(serde_json::from_str::<Invocation>(bad).is_err(), "{bad}");
        }
        let hello_failed = Answer::new(Carrier::Method("hello"), Err(OpError::ShuttingDown), None);
        let hello: Hello =
            serde_json::from_value(serde_json::to_value(&hello_failed).unwrap()["Hello"].clone())
                .unwrap();
        assert_eq!(hello.protocol, PROTOCOL_VERSION);
    }

    #[test]
    fn changed_travels_beside_a_call_reply_and_both_sides_may_predate_it() {
        let said = Answer::new(Carrier::Call, Ok(serde_json::json!({"n": 1})), Some(false));
        let bytes = serde_json::to_string(&said).unwrap();
        assert_eq!(
            bytes,
            r#"{"Call":{"Ok":{"reply":{"n":1},"changed":false}}}"#
        );
        assert_eq!(serde_json::from_str::<Answer>(&bytes).unwrap(), said);
        // A client of the first releases reads the reply and ignores what it does not know.
        #[derive(Deserialize)]
        struct FirstCallReply {
            reply: Value,
        }
        #[derive(Deserialize)]
        enum FirstResponse {
            Call(Result<FirstCallReply, OpError>),
        }
        let FirstResponse::Call(old) = serde_json::from_str(&bytes).unwrap();
        assert_eq!(old.unwrap().reply, serde_json::json!({"n": 1}));
        // A daemon of the first releases says nothing: not said, not "unchanged".
        let old: Answer = serde_json::from_str(r#"{"Call":{"Ok":{"reply":{"n":1}}}}"#).unwrap();
        assert_eq!(old.changed, None);
        assert_eq!(old.result, Ok(serde_json::json!({"n": 1})));
        // Not said: the first releases' bytes exactly.
        let silent = Answer::new(Carrier::Call, Ok(serde_json::json!({"n": 1})), None);
        assert_eq!(
            serde_json::to_string(&silent).unwrap(),
            r#"{"Call":{"Ok":{"reply":{"n":1}}}}"#
        );
        // Nowhere else: a method's reply, or a failed call, has no place for it.
        for (carrier, result) in [
            (Carrier::Method("status"), Err(OpError::ShuttingDown)),
            (
                Carrier::Method("resume"),
                Ok(serde_json::json!({"was_draining": true})),
            ),
            (Carrier::Call, Err(OpError::ShuttingDown)),
        ] {
            let answer = Answer::new(carrier, result, Some(true));
            assert_eq!(answer.changed, None, "{answer:?}");
            assert!(!serde_json::to_string(&answer).unwrap().contains("changed"));
        }
    }
}
