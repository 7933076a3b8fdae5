//! Access levels: what a caller may do, as a daemon's policy grants it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How much a caller may do. Levels are ordered: a caller granted `Operate` may also `Read`,
/// one granted `Admin` may do everything.
///
/// - `Read`: look (`hello`, `status`, `describe`, reading the log filter, read commands).
/// - `Operate`: run the daemon (`reload`, `rotate`, `drain`, `resume`, operate commands).
/// - `Admin`: change how it runs (`log-level`, admin commands).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Look, change nothing.
    Read,
    /// Run the daemon: reload, rotate, drain, resume.
    Operate,
    /// Change how it runs, e.g. its log filter.
    Admin,
}

impl Access {
    /// The name on the wire and in `ctl describe`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Operate => "operate",
            Access::Admin => "admin",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not an access level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown access level `{0}`; the levels are read, operate, admin")]
pub struct UnknownAccess(pub String);

impl std::str::FromStr for Access {
    type Err = UnknownAccess;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Access::Read, Access::Operate, Access::Admin]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAccess(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(Access::Read < Access::Operate && Access::Operate < Access::Admin);
        for a in [Access::Read, Access::Operate, Access::Admin] {
            assert_eq!(a.as_str().parse::<Access>(), Ok(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        }
        assert!("root".parse::<Access>().is_err());
    }
}
