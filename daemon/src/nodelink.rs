//! A front end's link to the node of its PostgreSQL store (`senderod --role api`). What only the
//! node can do — price and pay on Lightning (its channel graph and channels), make invoices (its
//! wallet's next address, its node's BOLT11 invoice) — a front end hands to the node's own API,
//! at the address the node published in the store when it started (a standby that takes over
//! publishes its own). The client's request goes as it came (its key, its idempotency key, its
//! trace), and the node's answer comes back as it went.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};

use crate::store::{Store, StoreError};

/// The store's record of where the node's API listens (written by the node at start).
pub const NODE_API_URL: &str = "node_api_url";
/// How long a front end reuses the address it read.
const REREAD_AFTER: Duration = Duration::from_secs(2);

/// Why a request could not be handed to the node.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No node has published its address on this store yet.
    #[error("no node (senderod --role node) has started on this store yet")]
    NoNode,
    /// The node's API did not take the request (it is down, or taking over).
    #[error("the node's API at {0} is unreachable: {1}")]
    Unreachable(String, String),
    /// The node took the request but its answer was lost (a retry with the same idempotency
    /// key gets it).
    #[error("the node's API at {0} did not answer: {1}")]
    NoAnswer(String, String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The node's answer.
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers (those of the message, not of the connection).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// A front end's link to the node.
pub struct NodeLink {
    store: Arc<Store>,
    client: reqwest::Client,
    read: Mutex<Option<(Instant, String)>>,
    /// Whether the last hand-over failed (the next failure is not logged again).
    failing: AtomicBool,
}

impl NodeLink {
    /// A link to the node of `store`; a request waits at most `timeout` for the node's answer.
    pub fn new(store: Arc<Store>, timeout: Duration) -> Result<NodeLink, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(NodeLink { store, client, read: Mutex::new(None), failing: AtomicBool::new(false) })
    }

    /// Where the node's API is, as last published.
    fn url(&self) -> Result<String, LinkError> {
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, url)) = read.as_ref() {
            if at.elapsed() < REREAD_AFTER {
                return Ok(url.clone());
            }
        }
        let url = self.store.meta(NODE_API_URL)?.ok_or(LinkError::NoNode)?;
        *read = Some((Instant::now(), url.clone()));
        Ok(url)
    }

    /// Hands `method path_and_query` with `headers` and `body` to the node; its answer.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, LinkError> {
        let base = tokio::task::block_in_place(|| self.url())?;
        let mut request = self.client.request(method, format!("{base}{path_and_query}")).body(body);
        for (name, value) in headers.iter().filter(|(name, _)| !hop_by_hop(name)) {
            request = request.header(name, value);
        }
        let answered = request.send().await;
        // Only a connection never made is sure to have carried nothing; after that, the node
        // may have taken the request.
        let failed = |e: reqwest::Error| match e.is_connect() || e.is_builder() {
            true => LinkError::Unreachable(base.clone(), e.to_string()),
            false => LinkError::NoAnswer(base.clone(), e.to_string()),
        };
        let result = match answered {
            Ok(response) => {
                let status = response.status();
                let headers: HeaderMap = response
                    .headers()
                    .iter()
                    .filter(|(name, _)| !hop_by_hop(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                response.bytes().await.map(|body| Answer { status, headers, body }).map_err(failed)
            }
            Err(e) => Err(failed(e)),
        };
        match &result {
            Err(e) => {
                // Read the address afresh next time: a standby may have taken over elsewhere.
                *self.read.lock().unwrap_or_else(PoisonError::into_inner) = None;
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "front end: handing a request to the node failed (said once until it works again)");
                }
            }
            Ok(_) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!(node = %base, "front end: the node answers again");
            }
            Ok(_) => {}
        }
        result
    }
}

/// Headers of a connection, not of the message: not passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    [header::CONNECTION, header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::UPGRADE]
        .contains(name)
        || name.as_str() == "keep-alive"
}

/// Publishes where this node's API is, for the front ends of its store.
pub fn publish(store: &Store, url: &str) -> Result<(), StoreError> {
    store.set_meta(NODE_API_URL, url)
}
