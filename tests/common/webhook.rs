//! A webhook receiver for the tests: a plain HTTP server on 127.0.0.1 that records every request
//! and answers with programmed statuses, and the signature check a real receiver does.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sendero_wallet::bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub answered: u16,
}

/// A webhook receiver on 127.0.0.1: records every request and answers the queued statuses
/// (then `fallback`).
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    pub hooks: Arc<Mutex<Vec<Hook>>>,
    pub answers: Arc<Mutex<VecDeque<u16>>>,
    pub fallback: Arc<Mutex<u16>>,
    /// A `Location` header sent with every answer (a receiver that redirects).
    pub location: Arc<Mutex<Option<String>>>,
}

impl Receiver {
    pub fn start(fallback: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            port: listener.local_addr().unwrap().port(),
            hooks: Default::default(),
            answers: Default::default(),
            fallback: Arc::new(Mutex::new(fallback)),
            location: Default::default(),
        };
        let me = r.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut headers = HashMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                // A request cut short (the sender was killed mid-write) is not a delivery.
                if reader.read_exact(&mut body).is_err() || !headers.contains_key("webhook-id") {
                    continue;
                }
                let status = me.answers.lock().unwrap().pop_front().unwrap_or(*me.fallback.lock().unwrap());
                let body = String::from_utf8_lossy(&body).into_owned();
                me.hooks.lock().unwrap().push(Hook { headers, body, answered: status });
                let mut stream = reader.into_inner();
                let location = me.location.lock().unwrap().clone().map(|l| format!("Location: {l}\r\n"));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
                    location.unwrap_or_default()
                );
            }
        });
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// Hooks answered 2xx for `event_type` about `payment_id`.
    pub fn delivered(&self, event_type: &str, payment_id: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.answered < 300)
            .filter(|h| {
                let v: Value = serde_json::from_str(&h.body).unwrap();
                v["type"] == event_type && v["data"]["payment_id"] == payment_id
            })
            .collect()
    }
}

/// Checks a hook's Standard Webhooks signature with `secret`, as a receiver would.
pub fn signature_valid(secret: &str, hook: &Hook) -> bool {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(&key);
    let signed = format!("{}.{}.{}", hook.headers["webhook-id"], hook.headers["webhook-timestamp"], hook.body);
    engine.input(signed.as_bytes());
    let expected = format!("v1,{}", B64.encode(hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()));
    hook.headers["webhook-signature"].split(' ').any(|s| s == expected)
}
