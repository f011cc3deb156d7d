//! Splices the rebalancer planned or started, persisted so that a restart never starts a second one for the same need.
