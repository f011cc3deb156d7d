//! Sendero's embedded Lightning node. It wraps `ldk-node`; the Lightning issue fills it in.
//! For now it pins the `ldk-node` version into the dependency graph so that the workspace is
//! proven to resolve to one `rusqlite`/`libsqlite3-sys` and one `bitcoin`.

pub use ldk_node;

/// The `ldk-node` release this crate is written against.
pub const LDK_NODE_VERSION: &str = "0.7.1";
