//! Language-model providers and the chain that tries them in order.
//!
//! A [`ChatProvider`] turns a [`ChatRequest`] into text. The kinds are
//! [`openai`] (any OpenAI-compatible endpoint, through async-openai) and
//! [`anthropic`] (the Messages API). [`Guarded`] wraps one with its timeout,
//! retries with backoff and jitter, requests-per-minute limit and circuit
//! breaker; [`ProviderChain`] tries the guarded providers in order until one
//! answers.

pub mod anthropic;
pub mod breaker;
pub mod chain;
pub mod openai;

pub use breaker::{Breaker, BreakerState};
pub use chain::{Guarded, ProviderChain};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One completion request. Model, temperature and token limit come from the
/// provider's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatResponse {
    pub content: String,
    /// The provider's name (configured, or kind/model).
    pub provider: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub latency: Duration,
}

/// Why a provider did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider}: timed out after {after:?}")]
    Timeout { provider: String, after: Duration },
    /// HTTP status and the body's message. 429 and 5xx are retried.
    #[error("{provider}: HTTP {status}: {message}")]
    Status {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("{provider}: {message}")]
    Transport { provider: String, message: String },
    /// The reply was not what the API promises (no choices, bad JSON).
    #[error("{provider}: malformed reply: {message}")]
    Malformed { provider: String, message: String },
    #[error("{provider}: circuit breaker open (retrying in {retry_in:?})")]
    BreakerOpen {
        provider: String,
        retry_in: Duration,
    },
    #[error("{provider}: over its requests-per-minute limit")]
    RateLimited { provider: String },
}

impl ProviderError {
    /// Whether trying the same provider again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Timeout { .. } | ProviderError::Transport { .. } => true,
            ProviderError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// A language model behind some API.
#[async_trait::async_trait]
pub trait ChatProvider: Send + Sync {
    /// The name used in logs, metrics and results.
    fn name(&self) -> &str;

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// Embeddings for `texts`, when the provider has an embedding model.
    async fn embed(&self, texts: &[String]) -> Option<Result<Vec<Vec<f32>>, ProviderError>> {
        let _ = texts;
        None
    }
}

/// The HTTP client every provider shares: one connection pool, and TLS by
/// rustls with the *ring* provider and the system's root certificates.
///
/// reqwest is built with `rustls-no-provider` (no aws-lc in the build), so it
/// gets a ready [`rustls::ClientConfig`] instead of looking up a process-wide
/// default provider. Timeouts are not set here: the chain bounds each call.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT.get_or_init(build_http_client).clone()
}

fn build_http_client() -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "nl: could not load a system root certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!(
            ignored,
            "nl: no system root certificates found; HTTPS providers will fail certificate checks"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("helios/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client setup: {e}"))
}
