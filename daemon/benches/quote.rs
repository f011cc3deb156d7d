//! `cargo bench --bench quote`: requests/s and p50/p99 latency of the cached quote endpoint
//! (`GET /v1/fx/quote`, API key checked, quote priced and persisted) against a bare hyper handler
//! answering a fixed JSON body, on the same machine with the same client (keep-alive HTTP/1.1
//! connections on loopback), in one run. The two alternate over several rounds so that a noisy
//! neighbour on the machine hits both alike; the table sums every round. Prints the table, the
//! ratio of the sums and of each round (aim ≥ 0.7) and peak RSS.

mod support;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sendero::config::{Config, Overrides};
use sendero::follower::ChainStatus;
use sendero::state::{AppState, Parts};
use sendero_wallet::bitcoin::Network;
use sendero_wallet::keys::Mnemonic;
use sendero_wallet::{BitcoindAuth, ChainSource, Treasury};

/// The allocator senderod runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 4;
const ROUNDS: usize = 4;
const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(2);
const QUOTE_PATH: &str = "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (quote_addr, key) = start_gateway_api(dir.path()).await?;
    let bare_addr = start_bare_hyper().await?;

    let (mut bare, mut quote) = (Run::default(), Run::default());
    let mut round_ratios = Vec::new();
    for _ in 0..ROUNDS {
        let b = load(bare_addr, "/", None).await?;
        let q = load(quote_addr, QUOTE_PATH, Some(&key)).await?;
        round_ratios.push(format!("{:.2}", q.rps() / b.rps()));
        bare.add(b);
        quote.add(q);
    }
    println!("\n{:<28} {:>12} {:>10} {:>10} {:>10}", "endpoint", "requests/s", "p50 µs", "p99 µs", "requests");
    for (name, r) in [("bare hyper handler", &bare), ("GET /v1/fx/quote (cached)", &quote)] {
        println!(
            "{:<28} {:>12.0} {:>10} {:>10} {:>10}",
            name,
            r.rps(),
            r.percentile(50),
            r.percentile(99),
            r.latencies_us.len()
        );
    }
    let ratio = quote.rps() / bare.rps();
    println!(
        "\nratio quote / bare = {ratio:.2} (aim ≥ 0.70); per round {} — {ROUNDS} alternating rounds of {}s each, \
         {CONNECTIONS} keep-alive connections",
        round_ratios.join(" "),
        MEASURE.as_secs()
    );
    println!("peak RSS (VmHWM) of this process: {} kB", support::rss_kb("self"));
    Ok(())
}

#[derive(Default)]
struct Run {
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
    }

    fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: usize) -> u64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        sorted.get((sorted.len().saturating_sub(1)) * p / 100).copied().unwrap_or_default()
    }
}

/// Hammers `path` on `addr` from CONNECTIONS keep-alive connections: WARMUP, then MEASURE.
async fn load(addr: SocketAddr, path: &str, key: Option<&str>) -> Result<Run, Box<dyn std::error::Error>> {
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..CONNECTIONS {
        let (path, key) = (path.to_owned(), key.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let begin = Instant::now();
            while begin.elapsed() < WARMUP + MEASURE {
                let mut req = Request::get(path.as_str()).header("host", "bench");
                if let Some(k) = &key {
                    req = req.header("authorization", format!("Bearer {k}"));
                }
                let sent = Instant::now();
                let res = sender.send_request(req.body(Full::new(Bytes::new()))?).await?;
                let status = res.status();
                res.into_body().collect().await?;
                if status != 200 {
                    return Err(format!("status {status}").into());
                }
                if begin.elapsed() > WARMUP {
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?.map_err(|e| e.to_string())?);
    }
    Ok(Run { latencies_us: all, elapsed: start.elapsed().saturating_sub(WARMUP) })
}

/// The real API router with a real store, wallet and rate cache (no bitcoind needed to quote).
async fn start_gateway_api(dir: &std::path::Path) -> Result<(SocketAddr, String), Box<dyn std::error::Error>> {
    let mut config =
        Config::load(None, [], &Overrides { dev: true, datadir: Some(dir.to_path_buf()), ..Default::default() })?;
    config.api.listen = "127.0.0.1:0".into();
    // The per-key limiter stays in the path (its cost is measured), set beyond the load.
    (config.api.rate_limit_per_sec, config.api.rate_limit_burst) = (u32::MAX, u32::MAX);
    let store = Arc::new(sendero::store::Store::open(&dir.join("sendero.sqlite"))?);
    let mnemonic = Mnemonic::from_str(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    )?;
    let treasury = Treasury::open(&dir.join("wallet.sqlite"), &mnemonic, Network::Regtest)?;
    let fx = Arc::new(sendero::fx::RateCache::new(3_600));
    for (pair, mid) in config.fx.static_table()? {
        fx.put(&pair, sendero::fx::Rate { mid, as_of: now(), source: "static" });
    }
    let (status_tx, status) = tokio::sync::watch::channel(ChainStatus::default());
    std::mem::forget(status_tx);
    let chain = Arc::new(ChainSource::new("http://127.0.0.1:1", BitcoindAuth::UserPass("u".into(), "p".into())));
    let onchain = Arc::new(sendero::rails::onchain::Onchain::new(treasury, chain, config.wallet.clone()));
    let state = AppState::compose(Parts {
        config: Arc::new(config),
        network: Network::Regtest,
        store,
        onchain,
        fx,
        status,
        front_end: false,
    })?;
    let (_, key) = state.keys.create("bench", &[sendero::apikey::Scope::Quote], now())?;
    // As in senderod: buffered quotes are written every 20 ms.
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let s = Arc::clone(&store);
            let _ = tokio::task::spawn_blocking(move || s.flush_deferred()).await;
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(sendero::api::serve(listener, state, tokio_util::sync::CancellationToken::new()));
    Ok((addr, key))
}

/// A bare hyper HTTP/1.1 handler answering a fixed JSON body of a quote's size.
async fn start_bare_hyper() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let body = Bytes::from_static(br#"{"pair":"EUR/BTC","rate":"0.00001182353","markup_bps":50,"expires_at":"2026-11-26T12:00:30Z","quote_id":"q_0123456789abcdef01234567","amount_minor":100000,"quote_amount_minor":1182353,"amount_sat":1182353}"#);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move { Response::builder().header("content-type", "application/json").body(Full::new(body)) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}
