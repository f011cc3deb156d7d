//! The daemon's background tasks, supervised: each is spawned under a name, and one that ends
//! before shutdown — returned, or panicked — is reported so that the daemon stops with a clear
//! log line and a non-zero exit (systemd then restarts it). At shutdown every task gets a bounded
//! time to finish, then is aborted.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

/// Named background tasks.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<&'static str>,
    names: HashMap<Id, &'static str>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The task's name.
    pub name: &'static str,
    /// Why, when it did not simply return: the panic's message.
    pub panic: Option<String>,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.panic {
            Some(why) => write!(f, "background task {} panicked: {why}", self.name),
            None => write!(f, "background task {} ended before shutdown", self.name),
        }
    }
}

impl Tasks {
    /// Runs `task` as `name`.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(async move {
            task.await;
            name
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits until a task ends (never, while there are none).
    pub async fn ended(&mut self) -> Ended {
        loop {
            match self.set.join_next_with_id().await {
                Some(Ok((_, name))) => return Ended { name, panic: None },
                Some(Err(e)) => {
                    let name = self.names.get(&e.id()).copied().unwrap_or("unknown");
                    let panic = if e.is_panic() { panic_message(e.into_panic()) } else { "cancelled".into() };
                    return Ended { name, panic: Some(panic) };
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Waits up to `grace` for every task to finish (they were told to stop), then aborts the rest.
    pub async fn shutdown(mut self, grace: Duration) {
        let finished = tokio::time::timeout(grace, async {
            while let Some(done) = self.set.join_next().await {
                if let Err(e) = done {
                    tracing::warn!(error = %e, "a background task failed while stopping");
                }
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!(left = self.set.len(), "background tasks still running after {grace:?}: aborted");
            self.set.abort_all();
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_or_panics_is_named() {
        let mut tasks = Tasks::default();
        tasks.spawn("sleeper", std::future::pending());
        tasks.spawn("quitter", async {});
        assert_eq!(tasks.ended().await, Ended { name: "quitter", panic: None });
        tasks.spawn("crasher", async { panic!("boom") });
        let ended = tasks.ended().await;
        assert_eq!((ended.name, ended.panic.as_deref()), ("crasher", Some("boom")));
        assert_eq!(ended.to_string(), "background task crasher panicked: boom");
        tasks.shutdown(Duration::from_millis(50)).await; // the sleeper is aborted
    }
}
