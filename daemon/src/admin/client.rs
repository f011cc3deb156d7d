//! A client for the admin RPC, used by `sendero-cli` and the end-to-end tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::http::{header, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::{COOKIE_FILE, SOCKET_FILE};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("cannot reach senderod at {endpoint}: {reason} (is senderod running with this --datadir?)")]
    Connect {
        /// Socket path or address.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The daemon answered something that is not a JSON-RPC response.
    #[error("bad answer from senderod: {0}")]
    Protocol(String),
    /// The daemon refused the call.
    #[error("{message} ({code})")]
    Rpc {
        /// JSON-RPC `error.code`.
        rpc_code: i64,
        /// Stable `error.data.code`.
        code: String,
        /// Human message.
        message: String,
        /// The whole `error.data`.
        data: Value,
    },
}

enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr, PathBuf),
}

/// Talks to one senderod.
pub struct AdminClient {
    endpoint: Endpoint,
}

impl AdminClient {
    /// The daemon serving `datadir`: its Unix socket, or `tcp` with the datadir's cookie.
    pub fn new(datadir: &Path, tcp: Option<SocketAddr>) -> AdminClient {
        let endpoint = match tcp {
            Some(addr) => Endpoint::Tcp(addr, datadir.join(COOKIE_FILE)),
            None => Endpoint::Unix(datadir.join(SOCKET_FILE)),
        };
        AdminClient { endpoint }
    }

    /// Calls `method` and returns its `result`, or the daemon's error.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let mut response = self.call_raw(request.to_string().into_bytes()).await?;
        if let Some(error) = response.get_mut("error").map(Value::take) {
            let data = error.get("data").cloned().unwrap_or(Value::Null);
            return Err(ClientError::Rpc {
                rpc_code: error.get("code").and_then(Value::as_i64).unwrap_or_default(),
                code: data.get("code").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
                message: error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
                data,
            });
        }
        response.get_mut("result").map(Value::take).ok_or_else(|| ClientError::Protocol("no result".into()))
    }

    /// Sends `body` as it is and returns the whole JSON-RPC response object.
    pub async fn call_raw(&self, body: Vec<u8>) -> Result<Value, ClientError> {
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path).await.map_err(|e| connect_error(path.display(), e))?;
                exchange(stream, body, None).await
            }
            Endpoint::Tcp(addr, cookie_path) => {
                let cookie =
                    std::fs::read_to_string(cookie_path).map_err(|e| connect_error(cookie_path.display(), e))?;
                let stream = TcpStream::connect(addr).await.map_err(|e| connect_error(addr, e))?;
                exchange(stream, body, Some(cookie.trim())).await
            }
        }
    }
}

fn connect_error(endpoint: impl std::fmt::Display, e: std::io::Error) -> ClientError {
    ClientError::Connect { endpoint: endpoint.to_string(), reason: e.to_string() }
}

async fn exchange<S>(stream: S, body: Vec<u8>, cookie: Option<&str>) -> Result<Value, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let protocol = |e: &dyn std::fmt::Display| ClientError::Protocol(e.to_string());
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| protocol(&e))?;
    tokio::spawn(conn);
    let mut request =
        Request::post("/").header(header::HOST, "senderod").header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::AUTHORIZATION, format!("Bearer {cookie}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| protocol(&e))?;
    let response = sender.send_request(request).await.map_err(|e| protocol(&e))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| protocol(&e))?.to_bytes();
    match serde_json::from_slice::<Value>(&bytes) {
        // A refusal before any method ran (cookie, body size) still carries a JSON-RPC error.
        Ok(v) if status.is_success() || v.get("error").is_some() => Ok(v),
        _ if !status.is_success() => {
            Err(ClientError::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim())))
        }
        Err(e) => Err(protocol(&e)),
        Ok(_) => Err(ClientError::Protocol("no result".into())),
    }
}
