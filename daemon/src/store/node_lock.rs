//! One node role at a time: the gateway's wallet, Lightning node, sagas, schedulers and webhook
//! sender run in exactly one process per PostgreSQL store (`senderod --role node`, or `all`).
//! That process holds a PostgreSQL advisory lock on a session of its own; another node waits as
//! a standby until the lock is free — the holder stopped, died or lost its connection (the
//! server ends a dead client's session, and the lock with it) — and then takes over.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::sql::Connection;
use super::StoreError;

/// The advisory lock's key ("sendnode" in ASCII).
const NODE_LOCK: i64 = 0x73_65_6e_64_6e_6f_64_65;

/// How often a standby tries the lock, and the holder checks its session.
pub const NODE_LOCK_POLL: Duration = Duration::from_millis(500);

/// The node lock, held while this lives.
pub struct NodeLock {
    session: Mutex<Connection>,
}

impl NodeLock {
    /// Takes the node lock of the store at `url`, waiting (as a standby, said once in the log)
    /// while another node holds it.
    pub async fn acquire(url: &str) -> Result<NodeLock, StoreError> {
        let session = Connection::postgres_session(url)?;
        let mut waiting_since: Option<std::time::Instant> = None;
        loop {
            let taken: bool = session.query_row("SELECT pg_try_advisory_lock(?1)", [NODE_LOCK], |r| r.get(0))?;
            if taken {
                match waiting_since {
                    Some(since) => tracing::warn!(
                        waited_secs = since.elapsed().as_secs(),
                        "standby took over: this senderod is now the node"
                    ),
                    None => tracing::info!("node lock taken: this senderod is the node"),
                }
                return Ok(NodeLock { session: Mutex::new(session) });
            }
            if waiting_since.is_none() {
                tracing::warn!("standby: another senderod node holds the node lock; waiting to take over");
                waiting_since = Some(std::time::Instant::now());
            }
            tokio::time::sleep(NODE_LOCK_POLL).await;
        }
    }

    /// Whether the lock is still held: its session still answers (a session the server ended
    /// took the lock with it, and another node may be taking over).
    pub fn check(&self) -> Result<(), StoreError> {
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let held: bool = session.query_row(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                 AND granted AND objid = ?1)",
            [NODE_LOCK & 0xffff_ffff],
            |r| r.get(0),
        )?;
        if held {
            Ok(())
        } else {
            Err(StoreError::NodeLockLost)
        }
    }
}
