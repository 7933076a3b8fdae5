//! The machinery behind each mutating operation, one file each.

pub(crate) mod drain;
pub(crate) mod reload;
pub(crate) mod resume;
pub(crate) mod rotate;
