//! The operator dashboard (`[dashboard] listen`): after a scripted day — on-chain payouts, a
//! batch, Lightning payouts through a channel, one failed, one payout left in the batch queue, a
//! webhook endpoint that never answers — the login refuses a wrong cookie and a used link, opens
//! with the admin cookie and with a one-time link; headless Chromium (Debian's `chromium`) saves a
//! screenshot of the page and dumps its DOM, whose every `data-figure` equals what the admin RPC
//! and the API report, and whose fees plot has the origin and one point per settled payout.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ln::{api_pay_invoice, open_channel, pair_each, unreachable_invoice};
use common::{api_payout, final_status, http_get_with_key, http_post, outside_address, wait_for, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
const CHROMIUM: &str = "chromium";
const STATES: [&str; 6] = ["submitted", "debited", "sending", "sent", "settled", "failed"];

/// One HTTP/1.1 request to the dashboard: (status, head, body).
fn request(port: u16, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let body = form.unwrap_or_default();
    let form_head = form
        .map(|f| format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", f.len()))
        .unwrap_or_default();
    let text =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}{form_head}Connection: close\r\n\r\n{body}");
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The session cookie a response sets (`sendero_dashboard=<token>`), if any.
fn session_cookie(head: &str) -> Option<String> {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie: sendero_dashboard="))?;
    let value = line.split_once(": ")?.1;
    assert!(value.contains("HttpOnly") && value.contains("SameSite=Strict") && value.contains("Path=/"), "{value}");
    let pair = value.split(';').next()?.to_owned();
    (pair.len() > "sendero_dashboard=".len()).then_some(pair)
}

/// The cargo target dir the test binary runs from (`<target>/debug/deps/e2e_dashboard-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir)
}

/// Runs headless Chromium with `args` then `url` (90 s at most); its stdout.
fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let spawned = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| {
        panic!("cannot run {CHROMIUM} ({e}): the dashboard test needs Debian's chromium — run scripts/setup.sh")
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{CHROMIUM} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{CHROMIUM} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every `data-figure="name">value<` in `dom`, separators stripped.
fn figures(dom: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for piece in dom.split("data-figure=\"").skip(1) {
        let (name, rest) = piece.split_once('"').unwrap();
        let text = &rest[rest.find('>').unwrap() + 1..rest.find('<').unwrap()];
        let value = text.replace(',', "").parse().unwrap_or_else(|_| panic!("{name}: {text:?} is not a figure"));
        assert!(out.insert(name.to_owned(), value).is_none(), "{name} twice");
    }
    out
}

/// The coordinate pairs of the plot's line `class`.
fn plot_points(dom: &str, class: &str) -> usize {
    let start = format!("class=\"{class}\" fill=\"none\" points=\"");
    let at = dom.find(&start).unwrap_or_else(|| panic!("no {class} line in the plot")) + start.len();
    dom[at..at + dom[at..].find('"').unwrap()].split_whitespace().count()
}

/// What the page must show, from the admin RPC and the API.
fn expected(gw: &Gateway, key: &str) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    for r in gw.call("treasury.status", json!({}))["rails"].as_array().unwrap() {
        for k in ["held_sat", "reserved_sat", "free_sat", "reserve_sat"] {
            want.insert(format!("treasury.{}.{k}", r["rail"].as_str().unwrap()), n(&r[k]));
        }
    }
    for c in gw.call("ln.channels", json!({}))["channels"].as_array().unwrap() {
        for k in ["capacity_sat", "outbound_msat", "inbound_msat"] {
            want.insert(format!("channel.{}.{k}", c["channel_id"].as_str().unwrap()), n(&c[k]));
        }
    }
    let listed = http_get_with_key(gw.api_port, "/v1/payments?limit=100", Some(key)).1;
    let listed = listed["payments"].as_array().unwrap();
    for p in listed {
        for state in STATES {
            want.entry(format!("payouts.{}.{state}", p["rail"].as_str().unwrap())).or_insert(0);
        }
    }
    for p in listed {
        *want.get_mut(&format!("payouts.{}.{}", p["rail"].as_str().unwrap(), p["state"].as_str().unwrap())).unwrap() +=
            1;
    }
    let (mut paid, mut alone) = (0, 0);
    for r in gw.call("fees.report", json!({}))["rails"].as_array().unwrap() {
        let rail = r["rail"].as_str().unwrap();
        want.insert(format!("fees.{rail}.count"), n(&r["count"]));
        want.insert(format!("fees.{rail}.fees_paid_sat"), n(&r["fees_paid_sat"]));
        paid += n(&r["fees_paid_sat"]);
        if r["one_by_one_fee_sat"].is_null() {
            alone += n(&r["fees_paid_sat"]);
        } else {
            want.insert(format!("fees.{rail}.one_by_one_fee_sat"), n(&r["one_by_one_fee_sat"]));
            alone += n(&r["one_by_one_fee_sat"]);
        }
    }
    want.insert("fees.plot.paid_sat".into(), paid);
    want.insert("fees.plot.one_by_one_sat".into(), alone);
    let queued = gw.call("batch.list", json!({}))["queued"].as_array().unwrap().clone();
    want.insert("batch.queued".into(), queued.len() as u64);
    want.insert("batch.queued_sat".into(), queued.iter().map(|q| n(&q["amount_sat"])).sum());
    for state in ["pending", "failed"] {
        let list = gw.call("webhook.deliveries", json!({"state": state, "limit": 1000}))["deliveries"].clone();
        want.insert(format!("webhooks.{state}"), list.as_array().unwrap().len() as u64);
    }
    want
}

/// A fresh one-time link from the admin RPC.
fn login_url(gw: &Gateway) -> String {
    let answer = gw.call("dashboard.login_url", json!({}));
    assert_eq!(answer["expires_in_secs"], 60, "{answer}");
    answer["url"].as_str().unwrap().to_owned()
}

/// The scripted day on A: on-chain payouts, a batch of three, Lightning payouts (one failing),
/// one payout left queued, a webhook endpoint that never answers. The key that paid.
fn scripted_day(p: &common::ln::Pair) -> String {
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let key = a.api_key("pay,read,quote");
    let dead = sendero::devchain::free_port().unwrap();
    let (status, hook) = http_post(
        a.api_port,
        "/v1/webhooks",
        &key,
        None,
        &json!({"url": format!("http://127.0.0.1:{dead}/")}).to_string(),
    );
    assert_eq!(status, 201, "{hook}");
    let on: Vec<String> = (0..2)
        .map(|i| api_payout(a, &key, 20_000 + i, &outside_address(60 + i as u8).to_string(), "onchain", "high"))
        .collect();
    wait_for("the payouts in the mempool", MINUTE, || chain.mempool().len() >= 2);
    chain.mine(1);
    let batched: Vec<String> = (0..3)
        .map(|i| api_payout(a, &key, 15_000 + i, &outside_address(70 + i as u8).to_string(), "onchain_batch", "low"))
        .collect();
    let left = a.call("batch.trigger", json!({}));
    assert_eq!(left["payouts"], 3, "{left}");
    wait_for("the batch in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(1);
    let ln: Vec<String> = (0..2).map(|i| api_pay_invoice(a, b, &key, 10_000 + i).0).collect();
    let failing = api_payout(a, &key, 5_000, &unreachable_invoice(&p.b_id, 5_000_000), "lightning", "high");
    for id in on.iter().chain(&batched).chain(&ln) {
        assert_eq!(final_status(a, &key, id), "SETTLED", "{id}");
    }
    assert_eq!(final_status(a, &key, &failing), "FAILED");
    api_payout(a, &key, 12_345, &outside_address(80).to_string(), "onchain_batch", "low");
    wait_for("A's wallet synced", MINUTE, || a.synced_height() == u64::from(chain.height()));
    key
}

#[test]
fn the_dashboard_logs_in_with_the_admin_cookie_and_shows_what_the_admin_rpc_reports() {
    let started = Instant::now();
    let port = sendero::devchain::free_port().unwrap();
    let extra = format!(
        "[dashboard]\nlisten = \"127.0.0.1:{port}\"\n\n[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = {{ \"BTC/EUR\" = \"85000\" }}\n"
    );
    let mut p = pair_each(&extra, "");
    open_channel(&p, 1_000_000);
    let key = scripted_day(&p);
    let a = &p.a;
    assert!(a.log().contains(&format!("operator dashboard at http://127.0.0.1:{port}/")), "{}", a.log());

    // The cookie file exists in socket mode too while the dashboard is on (0600); not on B.
    let cookie_path = a.datadir.join("admin.cookie");
    let cookie = std::fs::read_to_string(&cookie_path).unwrap().trim().to_owned();
    assert_eq!(std::fs::metadata(&cookie_path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!p.b.datadir.join("admin.cookie").exists());
    assert_eq!(p.b.error_code("dashboard.login_url", json!({})), "dashboard_off");

    // The login: a form first; a wrong cookie is refused; the admin cookie opens a session.
    let (status, _, body) = request(port, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(
        body.contains("name=\"cookie\"") && body.contains("admin cookie") && !body.contains("data-figure"),
        "{body}"
    );
    assert!(body.contains(&format!("cat {}", cookie_path.display())), "{body}");
    let (status, head, body) = request(port, "POST", "/login", None, Some("cookie=not-the-cookie"));
    assert_eq!(status, 401, "{head}");
    assert!(session_cookie(&head).is_none() && body.contains("not the admin cookie"), "{head}\n{body}");
    let (status, head, _) = request(port, "POST", "/login", None, Some(&format!("cookie={cookie}")));
    assert_eq!(status, 303, "{head}");
    assert!(head.to_ascii_lowercase().contains("location: /\r\n"), "{head}");
    let session = session_cookie(&head).expect("a session cookie");
    let (status, _, body) = request(port, "GET", "/", Some(&session), None);
    assert_eq!(status, 200);
    assert!(body.contains("data-figure=\"treasury.onchain.held_sat\""), "{body}");
    let (status, _, body) = request(port, "GET", "/", Some("sendero_dashboard=forged"), None);
    assert_eq!((status, body.contains("data-figure")), (200, false));

    // A one-time link works once.
    let url = login_url(a);
    let path = url.strip_prefix(&format!("http://127.0.0.1:{port}")).unwrap().to_owned();
    let (status, head, _) = request(port, "GET", &path, None, None);
    assert_eq!(status, 303, "{head}");
    let by_ticket = session_cookie(&head).expect("a session cookie");
    let (status, head, body) = request(port, "GET", &path, None, None);
    assert_eq!(status, 401, "{head}");
    assert!(session_cookie(&head).is_none() && body.contains("used already or has expired"), "{body}");
    // Logging out ends that session only.
    let (status, _, _) = request(port, "POST", "/logout", Some(&by_ticket), None);
    assert_eq!(status, 303);
    assert!(!request(port, "GET", "/", Some(&by_ticket), None).2.contains("data-figure"));
    assert!(request(port, "GET", "/", Some(&session), None).2.contains("data-figure"));

    // Headless Chromium logs in with a fresh link and saves a screenshot.
    let shot = target_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = format!("--screenshot={}", shot.display());
    chromium(&["--hide-scrollbars", "--window-size=1280,2400", &screenshot], &login_url(a));
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (width, height) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((width, height), (1280, 2400));
    assert!(png.len() > 30_000, "a screenshot of a page with content: {} bytes", png.len());
    eprintln!("dashboard screenshot: {} ({} bytes)", shot.display(), png.len());

    // Its DOM, with another fresh link: every figure is the admin RPC's (read again if anything
    // moved in between, e.g. a webhook retried).
    let mut attempt = 0;
    let (dom, shown, want) = loop {
        attempt += 1;
        let dom = chromium(&["--dump-dom"], &login_url(a));
        let (mut shown, want) = (figures(&dom), expected(a, &key));
        assert!(shown.remove("webhooks.oldest_pending_age_secs").is_some(), "{dom}");
        if shown == want || attempt == 3 {
            break (dom, shown, want);
        }
    };
    assert_eq!(shown, want, "the page's figures against the admin RPC's");
    assert!(want["payouts.onchain.settled"] == 2 && want["payouts.onchain_batch.settled"] == 3, "{want:?}");
    assert!(want["payouts.lightning.settled"] == 2 && want["payouts.lightning.failed"] == 1, "{want:?}");
    assert!(want["batch.queued"] == 1 && want["webhooks.pending"] > 0, "{want:?}");
    assert!(want.keys().any(|k| k.starts_with("channel.")), "{want:?}");
    let settled: u64 =
        ["onchain", "onchain_batch", "lightning", "on_us"].iter().map(|r| want[&format!("fees.{r}.count")]).sum();
    assert_eq!(settled, 7);
    let points = (plot_points(&dom, "paid"), plot_points(&dom, "one-by-one"));
    assert_eq!(points, (8, 8), "the origin and one point per settled payout");
    assert!(want["fees.plot.one_by_one_sat"] > want["fees.plot.paid_sat"], "the batch saved: {want:?}");
    assert!(
        dom.contains("data-status=\"fx.BTC/EUR\">ok<") && dom.contains("data-status=\"fx.source.static\">ok<"),
        "{dom}"
    );
    eprintln!("{} figures checked against the admin RPC in {:?}", shown.len(), started.elapsed());

    // Off unless configured on loopback; the cookie file goes at shutdown.
    p.a.stop();
    assert!(!cookie_path.exists(), "admin.cookie removed at shutdown");
    let refused = Command::new(common::SENDEROD)
        .args(["--config", "/dev/null", "--network", "regtest"])
        .env("SENDERO_DASHBOARD_LISTEN", "0.0.0.0:9381")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("dashboard.listen") && stderr.contains("loopback"), "{stderr}");
}
