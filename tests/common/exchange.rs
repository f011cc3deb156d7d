//! A local stand-in for the exchanges' public ticker APIs (Kraken, Bitstamp, Coinbase Exchange),
//! answering with their real response shapes on loopback, each exchange told how to behave.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;

/// How one exchange answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Bid = price − 1, ask = price + 1 (so the mid is `price`).
    Price(i64),
    /// This HTTP status, empty body.
    Status(u16),
    /// The price, but only after this long.
    Slow(i64, Duration),
    /// 200 with an HTML body.
    Garbage,
    /// Bid and ask of zero.
    Zero,
    /// Negative bid and ask.
    Negative,
}

type Behaviours = Arc<Mutex<HashMap<&'static str, Behaviour>>>;

/// The server; one port serves all three exchanges' paths.
pub struct ExchangeServer {
    pub port: u16,
    behaviours: Behaviours,
}

impl ExchangeServer {
    pub fn start() -> ExchangeServer {
        let behaviours: Behaviours = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::clone(&behaviours);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().fallback(answer).with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        ExchangeServer { port, behaviours }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, exchange: &'static str, behaviour: Behaviour) {
        self.behaviours.lock().expect("lock").insert(exchange, behaviour);
    }
}

async fn answer(State(behaviours): State<Behaviours>, uri: Uri) -> Response {
    let path = uri.path();
    let exchange = if path.starts_with("/0/public/Ticker") {
        "kraken"
    } else if path.starts_with("/api/v2/ticker/") {
        "bitstamp"
    } else if path.starts_with("/products/") {
        "coinbase"
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let behaviour = behaviours.lock().expect("lock").get(exchange).cloned().unwrap_or(Behaviour::Status(503));
    let (bid, ask) = match behaviour {
        Behaviour::Price(p) => ((p - 1).to_string(), (p + 1).to_string()),
        Behaviour::Slow(p, delay) => {
            tokio::time::sleep(delay).await;
            ((p - 1).to_string(), (p + 1).to_string())
        }
        Behaviour::Status(code) => {
            return StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY).into_response()
        }
        Behaviour::Garbage => return (StatusCode::OK, "<html>upstream maintenance</html>").into_response(),
        Behaviour::Zero => ("0".into(), "0".into()),
        Behaviour::Negative => ("-5".into(), "-3".into()),
    };
    let body = match exchange {
        "kraken" => json!({"error": [], "result": {"XXBTZEUR": {
            "a": [format!("{ask}.00000"), "1", "1.000"], "b": [format!("{bid}.00000"), "2", "2.000"],
            "c": [format!("{bid}.50000"), "0.01"], "v": ["10", "20"], "p": [bid, ask], "t": [5, 9],
            "l": [bid, bid], "h": [ask, ask], "o": bid}}}),
        "bitstamp" => json!({"high": ask, "last": bid, "timestamp": "1700000000", "bid": bid, "vwap": bid,
            "volume": "1000", "low": bid, "ask": ask, "open": bid}),
        _ => json!({"ask": ask, "bid": bid, "volume": "100", "trade_id": 1, "price": bid, "size": "0.1",
            "time": "2026-11-26T12:00:00.000000Z"}),
    };
    axum::Json(body).into_response()
}
