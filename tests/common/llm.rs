//! A fake LLM server for tests: the only thing Helios's tests fake.
//!
//! A local HTTP/1.1 server on `127.0.0.1` (hand-written on tokio TCP, so it
//! needs nothing but tokio and serde_json) that speaks just enough of
//!
//! - OpenAI's `POST /v1/chat/completions` and `POST /v1/embeddings`, and
//! - Anthropic's `POST /v1/messages`
//!
//! (each also without the `/v1` prefix, for base URLs that lack it).
//!
//! Completions follow a per-test script: a queue of [`Reply`]s (a text, an
//! HTTP status with a body, a delayed text to trigger timeouts, or malformed
//! JSON), answered in the format of the endpoint asked; once the queue is
//! empty every completion gets `500 script exhausted`. Embeddings are not
//! scripted: each text gets [`embed_text`], a normalized hashed bag of words,
//! so texts sharing words are similar.
//!
//! Every request is recorded (method, path, headers, JSON body) so a test can
//! assert what the prompt held and how many calls were made.
//!
//! The server runs on its own thread with its own runtime, so it answers
//! whatever the test's runtime is doing (also from a blocking test), and
//! stops when the [`FakeLlm`] is dropped.
//!
//! ```ignore
//! let llm = FakeLlm::start().await;
//! llm.reply_text("SELECT 1");
//! llm.reply_status(500, "boom");
//! // base_url = llm.base_url()  (http://127.0.0.1:PORT/v1)
//! assert_eq!(llm.calls(), 1);
//! assert!(llm.requests()[0].prompt().contains("customers"));
//! ```

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Dimensions of [`embed_text`]'s vectors.
pub const EMBEDDING_DIM: usize = 256;

/// Largest request body the server reads.
const MAX_BODY: usize = 16 << 20;

/// One scripted answer to a completion request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this completion. Token usage: the given `(in, out)`, or
    /// counted as whitespace-separated words of the prompt and the text.
    Text {
        text: String,
        usage: Option<(u64, u64)>,
    },
    /// This HTTP status and body (sent as JSON when it parses as JSON).
    Status { status: u16, body: String },
    /// The text, after waiting this long.
    Delay { delay: Duration, text: String },
    /// 200 with a body that is not valid JSON.
    Garbage,
}

/// Which API a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// OpenAI chat completions.
    Chat,
    /// OpenAI embeddings.
    Embeddings,
    /// Anthropic messages.
    Messages,
    Other,
}

impl Endpoint {
    fn of(path: &str) -> Endpoint {
        let path = path.split('?').next().unwrap_or(path);
        let path = path.strip_prefix("/v1").unwrap_or(path);
        match path {
            "/chat/completions" => Endpoint::Chat,
            "/embeddings" => Endpoint::Embeddings,
            "/messages" => Endpoint::Messages,
            _ => Endpoint::Other,
        }
    }

    /// Chat or messages: a call to the model.
    pub fn is_completion(self) -> bool {
        matches!(self, Endpoint::Chat | Endpoint::Messages)
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub endpoint: Endpoint,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    pub raw_body: String,
}

impl RecordedRequest {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `(role, content)` of each message, with Anthropic's `system` field
    /// first as a `system` message.
    pub fn messages(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        if let Some(system) = self.body.get("system") {
            out.push(("system".to_string(), content_text(system)));
        }
        if let Some(messages) = self.body.get("messages").and_then(Value::as_array) {
            for m in messages {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("");
                let content = m.get("content").map(content_text).unwrap_or_default();
                out.push((role.to_string(), content));
            }
        }
        out
    }

    /// Everything the model was shown, messages joined by blank lines.
    pub fn prompt(&self) -> String {
        self.messages()
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The system part of the prompt (OpenAI system messages or Anthropic's
    /// `system` field).
    pub fn system(&self) -> String {
        self.messages()
            .into_iter()
            .filter(|(r, _)| r == "system")
            .map(|(_, c)| c)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The last user message.
    pub fn last_user(&self) -> Option<String> {
        self.messages()
            .into_iter()
            .rev()
            .find(|(r, _)| r == "user")
            .map(|(_, c)| c)
    }

    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// The texts of an embeddings request.
    pub fn embedding_inputs(&self) -> Vec<String> {
        match self.body.get("input") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
            _ => vec![],
        }
    }
}

/// A message's content as text: a string, or the text blocks of an array.
fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// When set, embeddings requests get this status and body.
    embeddings_failure: Mutex<Option<(u16, String)>>,
}

/// The running fake server; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeLlm {
    /// Starts a server on `127.0.0.1` and a free port.
    pub async fn start() -> FakeLlm {
        FakeLlm::start_blocking()
    }

    /// [`FakeLlm::start`] for tests without a runtime.
    pub fn start_blocking() -> FakeLlm {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake LLM server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("fake LLM address");
        let state = Arc::new(State::default());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name("fake-llm".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake LLM runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = stop => {}
                        _ = accept_loop(listener, served) => {}
                    }
                });
            })
            .expect("fake LLM thread");
        FakeLlm {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1`: the `base_url` of an `openai` provider.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`: the `base_url` of an `anthropic` provider
    /// (or of an `openai` one without the `/v1` prefix).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply.
    pub fn reply(&self, reply: Reply) -> &Self {
        self.state.script.lock().unwrap().push_back(reply);
        self
    }

    /// Queues a completion with this text.
    pub fn reply_text(&self, text: impl Into<String>) -> &Self {
        self.reply(Reply::Text {
            text: text.into(),
            usage: None,
        })
    }

    /// Queues a completion with this text and token usage.
    pub fn reply_text_usage(
        &self,
        text: impl Into<String>,
        tokens_in: u64,
        tokens_out: u64,
    ) -> &Self {
        self.reply(Reply::Text {
            text: text.into(),
            usage: Some((tokens_in, tokens_out)),
        })
    }

    /// Queues an HTTP error.
    pub fn reply_status(&self, status: u16, body: impl Into<String>) -> &Self {
        self.reply(Reply::Status {
            status,
            body: body.into(),
        })
    }

    /// Queues a completion that arrives after `delay`.
    pub fn reply_delay(&self, delay: Duration, text: impl Into<String>) -> &Self {
        self.reply(Reply::Delay {
            delay,
            text: text.into(),
        })
    }

    /// Queues a 200 whose body is not JSON.
    pub fn reply_garbage(&self) -> &Self {
        self.reply(Reply::Garbage)
    }

    /// Makes embeddings requests fail with this status and body (`None`:
    /// answer them again).
    pub fn fail_embeddings(&self, failure: Option<(u16, &str)>) {
        *self.state.embeddings_failure.lock().unwrap() =
            failure.map(|(status, body)| (status, body.to_string()));
    }

    /// Scripted replies not yet used.
    pub fn pending(&self) -> usize {
        self.state.script.lock().unwrap().len()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The completion requests (chat and messages), in order.
    pub fn completion_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.endpoint.is_completion())
            .collect()
    }

    /// The last completion request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.completion_requests().pop()
    }

    /// Calls to the model: completion requests received (embeddings not
    /// counted).
    pub fn calls(&self) -> usize {
        self.count(Endpoint::is_completion)
    }

    /// Embeddings requests received.
    pub fn embedding_calls(&self) -> usize {
        self.count(|e| e == Endpoint::Embeddings)
    }

    fn count(&self, which: impl Fn(Endpoint) -> bool) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| which(r.endpoint))
            .count()
    }

    /// Forgets the recorded requests (the script stays).
    pub fn clear_requests(&self) {
        self.state.requests.lock().unwrap().clear();
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A normalized hashed bag of words (lower-cased alphanumeric words, FNV-1a
/// into [`EMBEDDING_DIM`] buckets): texts sharing words point the same way.
pub fn embed_text(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; EMBEDDING_DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        v[(hash % EMBEDDING_DIM as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, state.clone()));
    }
}

/// Serves requests on one keep-alive connection until the client closes it.
async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    loop {
        let request = match read_request(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                let _ = write_response(stream.get_mut(), 400, "text/plain", &e).await;
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (delay, status, content_type, body) = respond(&state, &request);
        state.requests.lock().unwrap().push(request);
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if write_response(stream.get_mut(), status, content_type, &body)
            .await
            .is_err()
            || close
        {
            return;
        }
    }
}

/// Reads one request; `None` at a clean end of the connection.
async fn read_request(
    stream: &mut BufReader<TcpStream>,
) -> Result<Option<RecordedRequest>, String> {
    let mut line = String::new();
    if stream
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?
        == 0
    {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or("no method")?.to_string();
    let path = parts.next().ok_or("no path")?.to_string();

    let mut headers = vec![];
    loop {
        let mut line = String::new();
        if stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("connection closed in the headers".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or("bad header line")?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };

    let mut body = vec![];
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            stream
                .read_line(&mut size)
                .await
                .map_err(|e| e.to_string())?;
            let size = size.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| "bad chunk size")?;
            if body.len() + size > MAX_BODY {
                return Err("body too large".into());
            }
            let mut chunk = vec![0; size + 2];
            stream
                .read_exact(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| "bad content-length")?;
        if length > MAX_BODY {
            return Err("body too large".into());
        }
        body = vec![0; length];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
    }

    let raw_body = String::from_utf8_lossy(&body).into_owned();
    Ok(Some(RecordedRequest {
        endpoint: Endpoint::of(&path),
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body,
    }))
}

/// The answer to `request`: an optional delay, status, content type, body.
fn respond(
    state: &State,
    request: &RecordedRequest,
) -> (Option<Duration>, u16, &'static str, String) {
    const JSON: &str = "application/json";
    if request.method != "POST" || request.endpoint == Endpoint::Other {
        return (None, 404, JSON, error_body(request.endpoint, "not found"));
    }
    if request.endpoint == Endpoint::Embeddings {
        if let Some((status, body)) = state.embeddings_failure.lock().unwrap().clone() {
            return (None, status, content_type(&body), body);
        }
        return (None, 200, JSON, embeddings_body(request));
    }
    let next = state.script.lock().unwrap().pop_front();
    match next {
        None => (
            None,
            500,
            JSON,
            error_body(request.endpoint, "script exhausted"),
        ),
        Some(Reply::Text { text, usage }) => {
            (None, 200, JSON, completion_body(request, &text, usage))
        }
        Some(Reply::Delay { delay, text }) => (
            Some(delay),
            200,
            JSON,
            completion_body(request, &text, None),
        ),
        Some(Reply::Status { status, body }) => (None, status, content_type(&body), body),
        Some(Reply::Garbage) => (None, 200, JSON, "{\"choices\": [ {\"mess".to_string()),
    }
}

fn content_type(body: &str) -> &'static str {
    if serde_json::from_str::<Value>(body).is_ok() {
        "application/json"
    } else {
        "text/plain"
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn completion_body(request: &RecordedRequest, text: &str, usage: Option<(u64, u64)>) -> String {
    let (tokens_in, tokens_out) = usage.unwrap_or_else(|| (words(&request.prompt()), words(text)));
    let model = request.model().unwrap_or("fake-model");
    let body = match request.endpoint {
        Endpoint::Messages => json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }),
        _ => json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
        }),
    };
    body.to_string()
}

fn embeddings_body(request: &RecordedRequest) -> String {
    let inputs = request.embedding_inputs();
    let tokens: u64 = inputs.iter().map(|t| words(t)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embed_text(text)}))
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": request.model().unwrap_or("fake-embedding"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
    .to_string()
}

fn error_body(endpoint: Endpoint, message: &str) -> String {
    match endpoint {
        Endpoint::Messages => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
        _ => json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
    }
    .to_string()
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}
