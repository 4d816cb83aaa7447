//! The `anthropic` provider kind: Anthropic's native Messages API over
//! reqwest.
//!
//! `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version`
//! headers. The API takes the system prompt as a separate `system` field and
//! only user/assistant turns in `messages`, so system messages are gathered
//! there. The reply's text blocks are joined into the completion.
//!
//! One call is one HTTP request: retries, timeouts, rate limits and the
//! breaker belong to [`super::chain`]. Status 529 (Anthropic's "overloaded")
//! is a 5xx and so retryable like the others.

use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use super::openai::{error_chain, quote};
use super::{ChatProvider, ChatRequest, ChatResponse, ProviderError, Role};
use crate::config::{ProviderConfig, ProviderKind};

/// The API root when `base_url` is not configured.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The API version Helios speaks.
pub const API_VERSION: &str = "2023-06-01";

/// A Claude model behind the Messages API.
pub struct AnthropicProvider {
    name: String,
    http: reqwest::Client,
    /// `{base_url}/v1/messages`.
    url: String,
    headers: HeaderMap,
    model: String,
    temperature: f32,
    max_tokens: u32,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl AnthropicProvider {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, String> {
        let who = cfg.display_name();
        if cfg.kind != ProviderKind::Anthropic {
            return Err(format!("provider {who}: kind is not \"anthropic\""));
        }
        if cfg.model.trim().is_empty() {
            return Err(format!("provider {who}: model is empty"));
        }
        let base_url = cfg
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/');
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "provider {who}: base_url \"{base_url}\" must start with http:// or https://"
            ));
        }
        let url = messages_url(base_url);

        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = cfg.api_key.as_deref().filter(|k| !k.is_empty()) {
            let mut value = HeaderValue::from_str(key)
                .map_err(|_| format!("provider {who}: api_key is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }

        Ok(AnthropicProvider {
            name: who,
            http: super::http_client()?,
            url,
            headers,
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
        })
    }

    fn body<'a>(&'a self, request: &'a ChatRequest) -> MessagesBody<'a> {
        let mut system: Vec<&str> = vec![];
        let mut messages: Vec<WireMessage> = vec![];
        for m in &request.messages {
            let role = match m.role {
                Role::System => {
                    system.push(&m.content);
                    continue;
                }
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            // The API wants turns to alternate: consecutive turns of one
            // role become one.
            match messages.last_mut() {
                Some(last) if last.role == role => {
                    last.content.push_str("\n\n");
                    last.content.push_str(&m.content);
                }
                _ => messages.push(WireMessage {
                    role,
                    content: m.content.clone(),
                }),
            }
        }
        MessagesBody {
            model: &self.model,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages,
        }
    }

    fn transport(&self, e: reqwest::Error) -> ProviderError {
        ProviderError::Transport {
            provider: self.name.clone(),
            message: error_chain(&e),
        }
    }
}

/// `{base}/v1/messages`, also when the configured root already ends in `/v1`.
fn messages_url(base_url: &str) -> String {
    if base_url.ends_with("/v1") {
        format!("{base_url}/messages")
    } else {
        format!("{base_url}/v1/messages")
    }
}

#[async_trait::async_trait]
impl ChatProvider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .json(&self.body(request))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(ProviderError::Status {
                provider: self.name.clone(),
                status: status.as_u16(),
                message: error_message(&bytes),
            });
        }
        let reply: MessagesReply =
            serde_json::from_slice(&bytes).map_err(|e| ProviderError::Malformed {
                provider: self.name.clone(),
                message: format!("{e}; body: {}", quote(&String::from_utf8_lossy(&bytes))),
            })?;
        let content: String = reply
            .content
            .iter()
            .filter(|block| block.kind == "text")
            .filter_map(|block| block.text.as_deref())
            .collect();
        if content.trim().is_empty() {
            return Err(ProviderError::Malformed {
                provider: self.name.clone(),
                message: format!(
                    "the reply has no text (stop_reason: {})",
                    reply.stop_reason.as_deref().unwrap_or("none")
                ),
            });
        }
        let usage = reply.usage.unwrap_or_default();
        Ok(ChatResponse {
            content,
            provider: self.name.clone(),
            tokens_in: usage.input_tokens,
            tokens_out: usage.output_tokens,
            latency: started.elapsed(),
        })
    }
}

/// The message of an error reply: `error.message` of Anthropic's
/// `{"type":"error","error":{"type":..,"message":..}}`, else the body.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Wrapped {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Wrapped>(body) {
        Ok(Wrapped {
            error: Inner {
                kind: Some(kind),
                message,
            },
        }) => quote(&format!("{kind}: {message}")),
        Ok(Wrapped { error }) => quote(&error.message),
        Err(_) => quote(&String::from_utf8_lossy(body)),
    }
}

#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    max_tokens: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage>,
}

#[derive(Serialize)]
struct WireMessage {
    role: &'static str,
    content: String,
}

#[derive(Deserialize)]
struct MessagesReply {
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ChatMessage;

    fn config() -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Anthropic,
            name: Some("claude".into()),
            base_url: None,
            model: "claude-test".into(),
            api_key: Some("sk-ant".into()),
            timeout: std::time::Duration::from_secs(5),
            max_retries: 0,
            requests_per_minute: 0,
            temperature: 0.0,
            max_tokens: 500,
            breaker_failures: 5,
            breaker_cooldown: std::time::Duration::from_secs(30),
            embedding_model: None,
        }
    }

    #[test]
    fn system_messages_go_to_the_system_field_and_turns_alternate() {
        let p = AnthropicProvider::new(&config()).unwrap();
        assert_eq!(p.url, "https://api.anthropic.com/v1/messages");
        let request = ChatRequest {
            messages: vec![
                ChatMessage::system("rules"),
                ChatMessage::user("schema"),
                ChatMessage::user("question"),
                ChatMessage::assistant("SELECT 1"),
                ChatMessage::system("more rules"),
                ChatMessage::user("again"),
            ],
        };
        let body = serde_json::to_value(p.body(&request)).unwrap();
        assert_eq!(body["system"], "rules\n\nmore rules");
        assert_eq!(body["model"], "claude-test");
        assert_eq!(body["max_tokens"], 500);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(messages[0]["content"], "schema\n\nquestion");
        assert_eq!(messages[1]["role"], "assistant");
        assert_eq!(messages[2]["content"], "again");
    }

    #[test]
    fn urls() {
        assert_eq!(
            messages_url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/v1/messages"
        );
        assert_eq!(
            messages_url("http://127.0.0.1:9/v1"),
            "http://127.0.0.1:9/v1/messages"
        );
        let mut cfg = config();
        cfg.base_url = Some("ftp://x".into());
        assert!(AnthropicProvider::new(&cfg).is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "overloaded_error: Overloaded"
        );
        assert_eq!(error_message(b"bad gateway"), "bad gateway");
    }
}
