//! A tiny HTTP/1.1 client for the admin endpoint (`Connection: close`, no
//! dependencies) and a parser for the Prometheus text format.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::common::Helios;
use crate::support::DEADLINE;

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`) to 127.0.0.1:`port`, blocking.
pub fn http_blocking(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(DEADLINE))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: 0\r\n{auth}\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, text.clone());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// As [`http_blocking`], off the async worker threads.
pub async fn try_http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let (method, path, token) = (
        method.to_string(),
        path.to_string(),
        token.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || http_blocking(port, &method, &path, token.as_deref()))
        .await
        .expect("http thread")
}

pub async fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> HttpResponse {
    try_http(port, method, path, token)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on admin port {port}: {e}"))
}

pub async fn get(h: &Helios, path: &str) -> HttpResponse {
    http(h.admin_port, "GET", path, None).await
}

// ---------------------------------------------------------------- metrics

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Metrics(pub Vec<Sample>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = line[..name_end].to_string();
            let mut rest = &line[name_end..];
            let mut labels = BTreeMap::new();
            if let Some(r) = rest.strip_prefix('{') {
                let (map, after) = parse_labels(r);
                labels = map;
                rest = after;
            }
            let value = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("bad sample line: {line}"));
            out.push(Sample {
                name,
                labels,
                value,
            });
        }
        Metrics(out)
    }

    /// The sample with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// As [`Metrics::get`], 0 for a sample not there (yet): counters only
    /// appear once incremented.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
}

/// `k="v",k2="v2"}` → the map and what follows the `}`.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut map = BTreeMap::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while matches!(chars.peek(), Some((_, ' ' | ','))) {
            chars.next();
        }
        match chars.peek() {
            Some((i, '}')) => return (map, &s[i + 1..]),
            None => return (map, ""),
            _ => {}
        }
        let mut key = String::new();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "label {key} in {s}"
        );
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(o) => value.push(o),
                    None => break,
                },
                '"' => break,
                o => value.push(o),
            }
        }
        map.insert(key.trim().to_string(), value);
    }
}

pub async fn scrape(h: &Helios) -> Metrics {
    let r = get(h, "/metrics").await;
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    Metrics::parse(&r.body)
}

/// Scrape until `done` holds for the metrics (counters are updated just
/// after the client has its answer, so a scrape right after may precede
/// them), and return those metrics; fail with the last scrape at the deadline.
pub async fn scrape_until(h: &Helios, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let m = scrape(h).await;
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}:\n{m:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
