//! The `openai` provider kind: OpenAI's chat completions API and every
//! endpoint that copies it (DeepSeek, xAI, Ollama, vLLM, llama.cpp, ...),
//! through async-openai.
//!
//! What this module owns, and why it departs from async-openai's defaults:
//!
//! - **No hidden retries.** async-openai's default HTTP executor wraps every
//!   request in its `OpenAIRetryLayer` (three retries with backoff on 429,
//!   5xx and connect errors). Helios retries in [`super::chain`], where the
//!   timeout, the rate limit, the breaker and the metrics see every attempt,
//!   so the client here is given a bare [`ReqwestService`] (the `middleware`
//!   feature) and makes exactly one HTTP request per call.
//! - **TLS without aws-lc.** The reqwest client comes from
//!   [`super::http_client`]: rustls with the *ring* provider and the system's
//!   root certificates.
//! - **Lenient replies.** Requests and replies go through async-openai's
//!   "bring your own types" entry points with the few fields Helios needs, so
//!   a compatible server that omits `id`/`created` or reports a
//!   `finish_reason` OpenAI does not define still works.
//! - **No environment leaks.** async-openai reads `OPENAI_API_KEY`,
//!   `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID` by default;
//!   here only the provider's own configuration counts (`api_key =
//!   "${OPENAI_API_KEY}"` in the config file says so explicitly).

use std::time::Instant;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::Client;
use serde::{Deserialize, Serialize};

use super::{ChatProvider, ChatRequest, ChatResponse, ProviderError, Role};
use crate::config::{ProviderConfig, ProviderKind};

/// The API root when `base_url` is not configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Replies quoted in error messages are cut to this many characters.
const QUOTE_LIMIT: usize = 300;

/// An OpenAI-compatible chat model (and, optionally, embedding model).
pub struct OpenAiProvider {
    name: String,
    base_url: String,
    client: Client<OpenAIConfig>,
    model: String,
    temperature: f32,
    max_tokens: u32,
    /// OpenAI itself wants `max_completion_tokens` (its reasoning models
    /// refuse `max_tokens`); compatible servers know `max_tokens`.
    completion_tokens_field: bool,
    embedding_model: Option<String>,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, String> {
        if cfg.kind != ProviderKind::Openai {
            return Err(format!(
                "provider {}: kind is not \"openai\"",
                cfg.display_name()
            ));
        }
        if cfg.model.trim().is_empty() {
            return Err(format!("provider {}: model is empty", cfg.display_name()));
        }
        let base_url = cfg
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "provider {}: base_url \"{base_url}\" must start with http:// or https://",
                cfg.display_name()
            ));
        }
        let completion_tokens_field = is_openai_itself(&base_url);
        // An absent key is sent as an empty bearer token, which local servers
        // (Ollama, vLLM and llama.cpp without --api-key) ignore.
        let config = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            .with_api_key(cfg.api_key.clone().unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        let http = super::http_client()?;
        let client =
            Client::build(http.clone(), config).with_http_service(ReqwestService::new(http));
        Ok(OpenAiProvider {
            name: cfg.display_name(),
            base_url,
            client,
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            completion_tokens_field,
            embedding_model: cfg.embedding_model.clone().filter(|m| !m.trim().is_empty()),
        })
    }

    fn chat_body<'a>(&'a self, request: &'a ChatRequest) -> ChatBody<'a> {
        let (max_tokens, max_completion_tokens) = if self.completion_tokens_field {
            (None, Some(self.max_tokens))
        } else {
            (Some(self.max_tokens), None)
        };
        ChatBody {
            model: &self.model,
            messages: request
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: match m.role {
                        Role::System => "system",
                        Role::User => "user",
                        Role::Assistant => "assistant",
                    },
                    content: &m.content,
                })
                .collect(),
            temperature: self.temperature,
            max_tokens,
            max_completion_tokens,
            stream: false,
        }
    }

    fn error(&self, e: OpenAIError) -> ProviderError {
        map_error(&self.name, e)
    }
}

/// Whether `base_url` is OpenAI's own API.
fn is_openai_itself(base_url: &str) -> bool {
    let rest = base_url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(base_url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host.eq_ignore_ascii_case("api.openai.com")
}

#[async_trait::async_trait]
impl ChatProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        let reply: ChatReply = self
            .client
            .chat()
            .create_byot(self.chat_body(request))
            .await
            .map_err(|e| self.error(e))?;
        let choice = reply
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Malformed {
                provider: self.name.clone(),
                message: "the reply has no choices".into(),
            })?;
        let content = match (choice.message.content, choice.message.refusal) {
            (Some(text), _) if !text.trim().is_empty() => text,
            (_, Some(refusal)) if !refusal.trim().is_empty() => {
                return Err(ProviderError::Malformed {
                    provider: self.name.clone(),
                    message: format!("the model refused: {}", quote(&refusal)),
                })
            }
            _ => {
                return Err(ProviderError::Malformed {
                    provider: self.name.clone(),
                    message: format!(
                        "the reply has no text (finish_reason: {})",
                        choice.finish_reason.as_deref().unwrap_or("none")
                    ),
                })
            }
        };
        let usage = reply.usage.unwrap_or_default();
        Ok(ChatResponse {
            content,
            provider: self.name.clone(),
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
            latency: started.elapsed(),
        })
    }

    async fn embed(&self, texts: &[String]) -> Option<Result<Vec<Vec<f32>>, ProviderError>> {
        let model = self.embedding_model.as_deref()?;
        if texts.is_empty() {
            return Some(Ok(vec![]));
        }
        let body = EmbeddingBody {
            model,
            input: texts,
            encoding_format: "float",
        };
        let result: Result<EmbeddingReply, _> = self.client.embeddings().create_byot(body).await;
        Some(match result {
            Err(e) => Err(self.error(e)),
            Ok(reply) => order_embeddings(&self.name, reply, texts.len()),
        })
    }
}

/// The vectors of `reply` in the order of the input, checked for count.
fn order_embeddings(
    provider: &str,
    reply: EmbeddingReply,
    expected: usize,
) -> Result<Vec<Vec<f32>>, ProviderError> {
    let malformed = |message: String| ProviderError::Malformed {
        provider: provider.to_string(),
        message,
    };
    if reply.data.len() != expected {
        return Err(malformed(format!(
            "{} embeddings for {expected} inputs",
            reply.data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in reply.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => return Err(malformed(format!("embedding index {index} out of place"))),
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// async-openai's error as Helios's: the HTTP status where there is one (so
/// 429 and 5xx are retried by the chain), a bad body as malformed.
pub(crate) fn map_error(provider: &str, e: OpenAIError) -> ProviderError {
    let provider = provider.to_string();
    match e {
        OpenAIError::ApiError(api) => ProviderError::Status {
            provider,
            status: api.status_code.as_u16(),
            message: quote(&api.api_error.to_string()),
        },
        OpenAIError::Reqwest(e) => {
            if let Some(status) = e.status() {
                ProviderError::Status {
                    provider,
                    status: status.as_u16(),
                    message: error_chain(&e),
                }
            } else if e.is_decode() {
                ProviderError::Malformed {
                    provider,
                    message: error_chain(&e),
                }
            } else {
                ProviderError::Transport {
                    provider,
                    message: error_chain(&e),
                }
            }
        }
        OpenAIError::JSONDeserialize(e, body) => ProviderError::Malformed {
            provider,
            message: format!("{e}; body: {}", quote(&body)),
        },
        // Only a request Helios built wrongly gets here; retrying cannot help.
        OpenAIError::InvalidArgument(message) => ProviderError::Malformed {
            provider,
            message: format!("request rejected by the client library: {message}"),
        },
        other => ProviderError::Transport {
            provider,
            message: other.to_string(),
        },
    }
}

/// An error and its sources on one line ("error sending request: connection
/// refused"), which reqwest's own `Display` leaves out.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// `text` cut to [`QUOTE_LIMIT`] characters for an error message.
pub(crate) fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatReply {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ReplyMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Serialize)]
struct EmbeddingBody<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct EmbeddingReply {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ChatMessage;

    fn config(base_url: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Openai,
            name: None,
            base_url: base_url.map(str::to_string),
            model: "gpt-test".into(),
            api_key: None,
            timeout: std::time::Duration::from_secs(5),
            max_retries: 0,
            requests_per_minute: 0,
            temperature: 0.2,
            max_tokens: 77,
            breaker_failures: 5,
            breaker_cooldown: std::time::Duration::from_secs(30),
            embedding_model: None,
        }
    }

    #[test]
    fn openai_itself_gets_max_completion_tokens() {
        assert!(is_openai_itself("https://api.openai.com/v1"));
        assert!(is_openai_itself("https://API.openai.com:443/v1"));
        assert!(!is_openai_itself("http://localhost:11434/v1"));
        assert!(!is_openai_itself("https://api.deepseek.com"));

        let request = ChatRequest {
            messages: vec![ChatMessage::system("rules"), ChatMessage::user("q")],
        };
        let openai = OpenAiProvider::new(&config(None)).unwrap();
        let body = serde_json::to_value(openai.chat_body(&request)).unwrap();
        assert_eq!(body["max_completion_tokens"], 77);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "q");

        let local = OpenAiProvider::new(&config(Some("http://localhost:11434/v1/"))).unwrap();
        let body = serde_json::to_value(local.chat_body(&request)).unwrap();
        assert_eq!(body["max_tokens"], 77);
        assert!(body.get("max_completion_tokens").is_none());
        assert_eq!(local.base_url, "http://localhost:11434/v1");
    }

    #[test]
    fn rejects_bad_configuration() {
        assert!(OpenAiProvider::new(&config(Some("localhost:11434"))).is_err());
        let mut cfg = config(None);
        cfg.model = " ".into();
        assert!(OpenAiProvider::new(&cfg).is_err());
        let mut cfg = config(None);
        cfg.kind = ProviderKind::Anthropic;
        assert!(OpenAiProvider::new(&cfg).is_err());
    }

    #[test]
    fn embeddings_are_put_back_in_input_order() {
        let reply: EmbeddingReply = serde_json::from_str(
            r#"{"data":[{"index":1,"embedding":[2.0]},{"index":0,"embedding":[1.0]}]}"#,
        )
        .unwrap();
        assert_eq!(
            order_embeddings("p", reply, 2).unwrap(),
            vec![vec![1.0], vec![2.0]]
        );
        let reply: EmbeddingReply =
            serde_json::from_str(r#"{"data":[{"index":0,"embedding":[1.0]}]}"#).unwrap();
        assert!(matches!(
            order_embeddings("p", reply, 2),
            Err(ProviderError::Malformed { .. })
        ));
    }

    #[test]
    fn quotes_are_cut() {
        let long = "x".repeat(1000);
        assert_eq!(quote(&long).len(), QUOTE_LIMIT + 3);
        assert_eq!(quote(" short "), "short");
    }
}
