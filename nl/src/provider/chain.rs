//! The guarded providers and the chain that tries them in order.
//!
//! [`Guarded`] puts everything that protects Helios from one slow or broken
//! model API around a [`ChatProvider`], which itself makes exactly one HTTP
//! request per call:
//!
//! - the circuit breaker ([`Breaker`]): open → [`ProviderError::BreakerOpen`]
//!   at once, without a request;
//! - the requests-per-minute limit (governor): a request waits for a permit
//!   as long as the per-request timeout allows, else
//!   [`ProviderError::RateLimited`] without a request;
//! - the per-request timeout ([`tokio::time::timeout`]);
//! - retries of retryable errors (timeouts, transport errors, 429, 5xx) with
//!   exponential backoff and jitter, `max_retries` times;
//! - metrics and a tracing span per call.
//!
//! [`ProviderChain`] asks the guarded providers in configuration order and
//! returns the first answer, or every provider's error.
//!
//! Metrics (the `metrics` crate facade; the binary installs the exporter):
//!
//! | name | labels | what |
//! |---|---|---|
//! | `helios_nl_requests_total` | provider, status | each attempt: `ok`, `error`, `timeout`; each refused call: `breaker_open`, `rate_limited` |
//! | `helios_nl_request_duration_seconds` | provider | each attempt's duration |
//! | `helios_nl_tokens_total` | provider, direction | tokens `in` (prompt) and `out` (completion) |
//! | `helios_nl_breaker_state` | provider | 0 closed, 1 half-open, 2 open |
//! | `helios_nl_embed_requests_total` | provider, status | embedding requests, same statuses |

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio::time::Instant;
use tracing::Instrument;

use super::anthropic::AnthropicProvider;
use super::openai::OpenAiProvider;
use super::{Breaker, BreakerState, ChatProvider, ChatRequest, ChatResponse, ProviderError};
use crate::config::{ProviderConfig, ProviderKind};

/// First retry delay before jitter; doubles with each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// No retry waits longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// One provider with its timeout, retries, rate limit and circuit breaker.
pub struct Guarded {
    provider: Arc<dyn ChatProvider>,
    name: String,
    timeout: Duration,
    max_retries: u32,
    backoff_base: Duration,
    limiter: Option<DefaultDirectRateLimiter>,
    breaker: Breaker,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("rate_limited", &self.limiter.is_some())
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

impl Guarded {
    /// Guards `provider` with `cfg`'s timeout, `max_retries`,
    /// `requests_per_minute` (0: unlimited) and breaker settings. The name is
    /// the provider's own.
    pub fn new(provider: Arc<dyn ChatProvider>, cfg: &ProviderConfig) -> Self {
        let limiter = NonZeroU32::new(cfg.requests_per_minute)
            .map(|rpm| RateLimiter::direct(Quota::per_minute(rpm)));
        let guarded = Guarded {
            name: provider.name().to_string(),
            provider,
            timeout: cfg.timeout,
            max_retries: cfg.max_retries,
            backoff_base: BACKOFF_BASE,
            limiter,
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown),
        };
        guarded.publish_breaker();
        guarded
    }

    /// The first retry's delay before jitter (200 ms unless set); each
    /// further retry doubles it, up to 10 s.
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Asks the model, within the breaker, the rate limit, the timeout and
    /// the retries.
    pub async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let span = tracing::info_span!(
            "nl_provider",
            provider = %self.name,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let (result, attempts) = self.run(request).instrument(span.clone()).await;
        span.record("attempts", attempts);
        match &result {
            Ok(_) => span.record("outcome", "ok"),
            Err(e) => span.record("outcome", tracing::field::display(e)),
        };
        self.publish_breaker();
        result
    }

    /// The call; also returns how many requests it made.
    async fn run(&self, request: &ChatRequest) -> (Result<ChatResponse, ProviderError>, u32) {
        if let Err(retry_in) = self.breaker.try_acquire() {
            self.count("breaker_open");
            let error = ProviderError::BreakerOpen {
                provider: self.name.clone(),
                retry_in,
            };
            tracing::debug!(%error, "nl provider skipped");
            return (Err(error), 0);
        }
        let mut outcome = BreakerCall {
            breaker: &self.breaker,
            decided: false,
        };
        let mut attempts = 0u32;
        let mut last_error: Option<ProviderError> = None;
        loop {
            if let Err(limited) = self.permit().await {
                self.count("rate_limited");
                return match last_error {
                    // The provider did fail; that is the better answer.
                    Some(error) => {
                        outcome.failure(&error);
                        (Err(error), attempts)
                    }
                    // Nothing learnt about the provider: `outcome` releases.
                    None => (Err(limited), attempts),
                };
            }
            attempts += 1;
            let started = Instant::now();
            let result =
                match tokio::time::timeout(self.timeout, self.provider.complete(request)).await {
                    Ok(result) => result,
                    Err(_) => Err(ProviderError::Timeout {
                        provider: self.name.clone(),
                        after: self.timeout,
                    }),
                };
            metrics::histogram!("helios_nl_request_duration_seconds", "provider" => self.name.clone())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(response) => {
                    self.count("ok");
                    self.count_tokens(&response);
                    outcome.success();
                    return (Ok(response), attempts);
                }
                Err(error) => {
                    self.count(match error {
                        ProviderError::Timeout { .. } => "timeout",
                        _ => "error",
                    });
                    if error.is_retryable() && attempts <= self.max_retries {
                        let delay = self.backoff(attempts);
                        tracing::warn!(%error, attempt = attempts, retry_in = ?delay, "nl provider failed; retrying");
                        tokio::time::sleep(delay).await;
                        last_error = Some(error);
                        continue;
                    }
                    tracing::warn!(%error, attempts, "nl provider failed");
                    outcome.failure(&error);
                    return (Err(error), attempts);
                }
            }
        }
    }

    /// Embeddings, when the provider has an embedding model: one request,
    /// within the timeout and the rate limit, skipped while the breaker is
    /// open. Embedding failures do not move the breaker: a broken embedding
    /// endpoint only costs retrieval its embeddings.
    ///
    /// With a rate limit, the provider is first asked for the embeddings of
    /// nothing (`embed(&[])`, answered without a request), so that a
    /// provider without an embedding model uses no permit.
    pub async fn embed(&self, texts: &[String]) -> Option<Result<Vec<Vec<f32>>, ProviderError>> {
        if texts.is_empty() {
            return self.provider.embed(texts).await;
        }
        if self.limiter.is_some() && self.provider.embed(&[]).await.is_none() {
            return None;
        }
        if self.breaker.state() == BreakerState::Open {
            match self.breaker.try_acquire() {
                Err(retry_in) => {
                    self.count_embed("breaker_open");
                    return Some(Err(ProviderError::BreakerOpen {
                        provider: self.name.clone(),
                        retry_in,
                    }));
                }
                // The cooldown ended in between: embeddings are not the trial.
                Ok(()) => self.breaker.release(),
            }
        }
        if let Err(limited) = self.permit().await {
            self.count_embed("rate_limited");
            return Some(Err(limited));
        }
        let result = match tokio::time::timeout(self.timeout, self.provider.embed(texts)).await {
            Ok(None) => return None,
            Ok(Some(result)) => result,
            Err(_) => Err(ProviderError::Timeout {
                provider: self.name.clone(),
                after: self.timeout,
            }),
        };
        self.count_embed(match &result {
            Ok(_) => "ok",
            Err(ProviderError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        });
        Some(result)
    }

    /// Waits for a rate-limit permit, as long as the timeout allows.
    async fn permit(&self) -> Result<(), ProviderError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            let wait = match limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => not_until.wait_time_from(limiter.clock().now()),
            };
            if Instant::now() + wait > deadline {
                return Err(ProviderError::RateLimited {
                    provider: self.name.clone(),
                });
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// The delay before retry number `retry` (1-based): the base doubled per
    /// retry, capped, then "equal jitter" (a random point in its upper half)
    /// so that many sessions do not retry in step.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(BACKOFF_CAP.max(self.backoff_base));
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }

    fn count(&self, status: &'static str) {
        metrics::counter!("helios_nl_requests_total", "provider" => self.name.clone(), "status" => status)
            .increment(1);
    }

    fn count_embed(&self, status: &'static str) {
        metrics::counter!("helios_nl_embed_requests_total", "provider" => self.name.clone(), "status" => status)
            .increment(1);
    }

    fn count_tokens(&self, response: &ChatResponse) {
        metrics::counter!("helios_nl_tokens_total", "provider" => self.name.clone(), "direction" => "in")
            .increment(response.tokens_in);
        metrics::counter!("helios_nl_tokens_total", "provider" => self.name.clone(), "direction" => "out")
            .increment(response.tokens_out);
    }

    fn publish_breaker(&self) {
        metrics::gauge!("helios_nl_breaker_state", "provider" => self.name.clone())
            .set(self.breaker.state().as_gauge());
    }
}

/// A call the breaker let through. It must tell the breaker how it went; a
/// call dropped midway (its caller gave up) or refused locally tells it
/// nothing, and gives a half-open breaker's trial back.
struct BreakerCall<'a> {
    breaker: &'a Breaker,
    decided: bool,
}

impl BreakerCall<'_> {
    fn success(&mut self) {
        self.decided = true;
        self.breaker.record_success();
    }

    fn failure(&mut self, error: &ProviderError) {
        // A request refused for its own content (too long, invalid) says
        // nothing about the provider's health.
        if let ProviderError::Status {
            status: 400 | 413 | 422,
            ..
        } = error
        {
            return;
        }
        self.decided = true;
        self.breaker.record_failure();
    }
}

impl Drop for BreakerCall<'_> {
    fn drop(&mut self) {
        if !self.decided {
            self.breaker.release();
        }
    }
}

/// The configured providers, tried in order.
#[derive(Debug, Default)]
pub struct ProviderChain {
    providers: Vec<Guarded>,
}

impl ProviderChain {
    pub fn new(providers: Vec<Guarded>) -> Self {
        ProviderChain { providers }
    }

    /// Builds and guards `[[nl.providers]]` in order.
    pub fn from_config(configs: &[ProviderConfig]) -> Result<ProviderChain, String> {
        let mut providers = Vec::with_capacity(configs.len());
        for (i, cfg) in configs.iter().enumerate() {
            if cfg.kind != ProviderKind::Builtin && cfg.model.trim().is_empty() {
                return Err(format!("nl.providers[{i}]: model is required"));
            }
            let built: Result<Arc<dyn ChatProvider>, String> = match cfg.kind {
                ProviderKind::Openai => OpenAiProvider::new(cfg).map(|p| Arc::new(p) as _),
                ProviderKind::Anthropic => AnthropicProvider::new(cfg).map(|p| Arc::new(p) as _),
                // Not a model: the translator runs it itself (translate.rs).
                ProviderKind::Builtin => continue,
            };
            let provider = built.map_err(|e| format!("nl.providers[{i}]: {e}"))?;
            providers.push(Guarded::new(provider, cfg));
        }
        Ok(ProviderChain { providers })
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// The providers' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.providers.iter().map(Guarded::name).collect()
    }

    pub fn providers(&self) -> &[Guarded] {
        &self.providers
    }

    /// Each provider's name and breaker state, in order (for health checks
    /// and `SHOW HELIOS`).
    pub fn breaker_states(&self) -> Vec<(&str, BreakerState)> {
        self.providers
            .iter()
            .map(|p| (p.name(), p.breaker_state()))
            .collect()
    }

    /// The first answer from the providers in order, or every provider's
    /// error (empty when the chain is).
    pub async fn complete(
        &self,
        request: &ChatRequest,
    ) -> Result<ChatResponse, Vec<ProviderError>> {
        let mut errors = Vec::new();
        for provider in &self.providers {
            match provider.complete(request).await {
                Ok(response) => {
                    if !errors.is_empty() {
                        tracing::info!(
                            provider = provider.name(),
                            failed = errors.len(),
                            "nl: answered by a fallback provider"
                        );
                    }
                    return Ok(response);
                }
                Err(error) => errors.push(error),
            }
        }
        Err(errors)
    }

    /// Embeddings of `texts` from the first provider that has an embedding
    /// model and answers; `None` when none does.
    pub async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        for provider in &self.providers {
            match provider.embed(texts).await {
                None => continue,
                Some(Ok(vectors)) => return Some(vectors),
                Some(Err(error)) => {
                    tracing::warn!(%error, "nl: embeddings failed");
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ChatMessage;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    /// A provider that plays a script of results and counts its calls.
    struct Scripted {
        name: String,
        script: Mutex<Vec<Result<&'static str, u16>>>,
        calls: AtomicU32,
        delay: Duration,
    }

    impl Scripted {
        fn new(name: &str, script: Vec<Result<&'static str, u16>>) -> Arc<Self> {
            Arc::new(Scripted {
                name: name.into(),
                script: Mutex::new(script.into_iter().rev().collect()),
                calls: AtomicU32::new(0),
                delay: Duration::ZERO,
            })
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl ChatProvider for Scripted {
        fn name(&self) -> &str {
            &self.name
        }

        async fn complete(&self, _: &ChatRequest) -> Result<ChatResponse, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let next = self.script.lock().unwrap().pop().unwrap_or(Err(500));
            match next {
                Ok(text) => Ok(ChatResponse {
                    content: text.into(),
                    provider: self.name.clone(),
                    tokens_in: 3,
                    tokens_out: 1,
                    latency: Duration::ZERO,
                }),
                Err(status) => Err(ProviderError::Status {
                    provider: self.name.clone(),
                    status,
                    message: "scripted".into(),
                }),
            }
        }
    }

    fn cfg(retries: u32, breaker_failures: u32) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Openai,
            name: None,
            base_url: None,
            model: "m".into(),
            api_key: None,
            timeout: Duration::from_millis(200),
            max_retries: retries,
            requests_per_minute: 0,
            temperature: 0.0,
            max_tokens: 100,
            breaker_failures,
            breaker_cooldown: Duration::from_millis(100),
            embedding_model: None,
        }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::user("q")],
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_only() {
        let p = Scripted::new("p", vec![Err(503), Err(429), Ok("SELECT 1")]);
        let g = Guarded::new(p.clone(), &cfg(2, 5)).with_backoff(Duration::from_millis(1));
        assert_eq!(g.complete(&request()).await.unwrap().content, "SELECT 1");
        assert_eq!(p.calls(), 3);

        let p = Scripted::new("p", vec![Err(401), Ok("SELECT 1")]);
        let g = Guarded::new(p.clone(), &cfg(2, 5)).with_backoff(Duration::from_millis(1));
        let err = g.complete(&request()).await.unwrap_err();
        assert!(matches!(err, ProviderError::Status { status: 401, .. }));
        assert_eq!(p.calls(), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_retries() {
        let p = Scripted::new("p", vec![]);
        let g = Guarded::new(p.clone(), &cfg(2, 0)).with_backoff(Duration::from_millis(1));
        let err = g.complete(&request()).await.unwrap_err();
        assert!(matches!(err, ProviderError::Status { status: 500, .. }));
        assert_eq!(p.calls(), 3);
    }

    #[tokio::test]
    async fn times_out() {
        let p = Arc::new(Scripted {
            name: "slow".into(),
            script: Mutex::new(vec![Ok("late")]),
            calls: AtomicU32::new(0),
            delay: Duration::from_secs(5),
        });
        let g = Guarded::new(p, &cfg(0, 5));
        let started = Instant::now();
        let err = g.complete(&request()).await.unwrap_err();
        assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn breaker_opens_and_skips_the_provider() {
        let p = Scripted::new("p", vec![]);
        let g = Guarded::new(p.clone(), &cfg(0, 2));
        for _ in 0..2 {
            assert!(g.complete(&request()).await.is_err());
        }
        assert_eq!(g.breaker_state(), BreakerState::Open);
        let err = g.complete(&request()).await.unwrap_err();
        assert!(matches!(err, ProviderError::BreakerOpen { .. }), "{err}");
        assert_eq!(p.calls(), 2);
    }

    #[tokio::test]
    async fn content_errors_do_not_open_the_breaker() {
        let p = Scripted::new("p", vec![Err(400), Err(400), Err(400)]);
        let g = Guarded::new(p.clone(), &cfg(0, 2));
        for _ in 0..3 {
            assert!(g.complete(&request()).await.is_err());
        }
        assert_eq!(g.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_cancelled_trial_is_given_back() {
        let p = Arc::new(Scripted {
            name: "slow".into(),
            script: Mutex::new(vec![]),
            calls: AtomicU32::new(0),
            delay: Duration::from_millis(50),
        });
        let g = Guarded::new(p, &cfg(0, 1));
        assert!(g.complete(&request()).await.is_err());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(g.breaker_state(), BreakerState::HalfOpen);
        // The trial's caller gives up before the answer.
        let _ = tokio::time::timeout(Duration::from_millis(10), g.complete(&request())).await;
        assert!(g.breaker().try_acquire().is_ok(), "next trial allowed");
    }

    #[tokio::test]
    async fn rate_limit_refuses_when_the_wait_exceeds_the_timeout() {
        let p = Scripted::new("p", vec![Ok("a"), Ok("b")]);
        let mut c = cfg(0, 5);
        c.requests_per_minute = 1;
        let g = Guarded::new(p.clone(), &c);
        assert!(g.complete(&request()).await.is_ok());
        let err = g.complete(&request()).await.unwrap_err();
        assert!(matches!(err, ProviderError::RateLimited { .. }), "{err}");
        assert_eq!(p.calls(), 1);
        assert_eq!(g.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn rate_limit_waits_for_a_permit_within_the_timeout() {
        let p = Scripted::new("p", vec![Ok("a"), Ok("b"), Ok("c")]);
        let mut c = cfg(0, 5);
        // 1200 per minute: one every 50 ms, a burst of 1200 at first.
        c.requests_per_minute = 1200;
        c.timeout = Duration::from_secs(1);
        let g = Guarded::new(p.clone(), &c);
        for _ in 0..3 {
            assert!(g.complete(&request()).await.is_ok());
        }
    }

    #[tokio::test]
    async fn chain_falls_back_and_collects_errors() {
        let a = Scripted::new("a", vec![Err(500)]);
        let b = Scripted::new("b", vec![Ok("SELECT 2")]);
        let chain = ProviderChain::new(vec![
            Guarded::new(a.clone(), &cfg(0, 5)),
            Guarded::new(b.clone(), &cfg(0, 5)),
        ]);
        assert_eq!(chain.names(), vec!["a", "b"]);
        let answer = chain.complete(&request()).await.unwrap();
        assert_eq!(answer.provider, "b");

        let errors = chain.complete(&request()).await.unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            chain.breaker_states(),
            vec![("a", BreakerState::Closed), ("b", BreakerState::Closed)]
        );
        assert!(ProviderChain::default()
            .complete(&request())
            .await
            .unwrap_err()
            .is_empty());
    }

    #[tokio::test]
    async fn chain_without_embeddings() {
        let a = Scripted::new("a", vec![]);
        let chain = ProviderChain::new(vec![Guarded::new(a, &cfg(0, 5))]);
        assert_eq!(chain.embed(&["x".to_string()]).await, None);
    }

    #[tokio::test]
    async fn asking_for_embeddings_a_provider_lacks_uses_no_permit() {
        let p = Scripted::new("p", vec![Ok("a")]);
        let mut c = cfg(0, 5);
        c.requests_per_minute = 1;
        let g = Guarded::new(p.clone(), &c);
        assert!(g.embed(&["x".to_string()]).await.is_none());
        assert!(g.complete(&request()).await.is_ok());
    }

    #[test]
    fn backoff_grows_with_jitter() {
        let g = Guarded::new(Scripted::new("p", vec![]), &cfg(0, 5))
            .with_backoff(Duration::from_millis(100));
        for _ in 0..20 {
            let first = g.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = g.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(g.backoff(40) <= BACKOFF_CAP);
        }
    }

    #[test]
    fn from_config_builds_both_kinds_in_order() {
        let mut anthropic = cfg(0, 5);
        anthropic.kind = ProviderKind::Anthropic;
        anthropic.name = Some("claude".into());
        let chain = ProviderChain::from_config(&[cfg(0, 5), anthropic]).unwrap();
        assert_eq!(chain.names(), vec!["openai/m", "claude"]);
        let mut bad = cfg(0, 5);
        bad.base_url = Some("nowhere".into());
        let err = ProviderChain::from_config(&[cfg(0, 5), bad]).unwrap_err();
        assert!(err.starts_with("nl.providers[1]"), "{err}");
    }
}
