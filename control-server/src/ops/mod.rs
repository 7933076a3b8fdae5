//! The built-in operations, each a registry entry that owns its state: adding one is a file
//! here and a line in `Builder::bind` that registers it.

pub(crate) mod counters;
pub(crate) mod describe;
pub(crate) mod drain;
pub(crate) mod log_level;
pub(crate) mod reload;
pub(crate) mod renamed;
pub(crate) mod rotate;
pub(crate) mod status;
