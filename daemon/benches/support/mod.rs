//! What the benches share beyond the test harness: a keep-alive HTTP/1.1 client for the API, a
//! reader of one HTTP/1.1 message, and a process's peak RSS. Included with `mod support;`
//! (a folder without `main.rs`, so Cargo does not take it for a bench of its own).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// One keep-alive HTTP/1.1 connection to the API: requests go one after another on it.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl KeepAlive {
    /// Connects to the API on `port` (no Nagle; a response may take up to a minute).
    pub fn connect(port: u16) -> KeepAlive {
        let writer = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        writer.set_nodelay(true).expect("nodelay");
        writer.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        KeepAlive { reader: BufReader::new(writer.try_clone().expect("clone")), writer }
    }

    /// A request with the API key (and an idempotency key); (status, body text).
    pub fn request(&mut self, method: &str, path: &str, key: &str, idem: Option<&str>, body: &str) -> (u16, String) {
        let idem = idem.map(|k| format!("X-Idempotency-Key: {k}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n{idem}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(request.as_bytes()).expect("send");
        let (first, body) = read_message(&mut self.reader).expect("response");
        let status = first.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// [`KeepAlive::request`] with a JSON body (`Value::Null`: none) and a JSON answer.
    pub fn request_json(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        idem: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let body = if body.is_null() { String::new() } else { body.to_string() };
        let (status, text) = self.request(method, path, key, idem, &body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// One HTTP/1.1 message (a request or a response): its first line and body; `None` at the end
/// of the connection.
pub fn read_message(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let (mut first, mut line, mut length) = (String::new(), String::new(), 0);
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((first, body))
}

/// Peak resident set size (VmHWM) of a process (`"self"` or a pid), kB; 0 when unknown.
pub fn rss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy and total clock ticks of the whole machine, all cores.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let all: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (all.saturating_sub(idle), all)
}
