//! The provider layer against a fake LLM server: both API kinds, retries,
//! fallback, timeouts, the circuit breaker, the rate limit, malformed
//! replies and embeddings. Real HTTP on 127.0.0.1; only the model is fake.

#[path = "../../tests/common/llm.rs"]
mod llm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use helios_nl::provider::anthropic::AnthropicProvider;
use helios_nl::provider::openai::OpenAiProvider;
use helios_nl::provider::{
    BreakerState, ChatMessage, ChatRequest, Guarded, ProviderChain, ProviderError,
};
use helios_nl::{ProviderConfig, ProviderKind};
use llm::FakeLlm;

fn openai(llm: &FakeLlm, name: &str) -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Openai,
        name: Some(name.to_string()),
        base_url: Some(llm.base_url()),
        model: "gpt-fake".into(),
        api_key: Some("sk-test".into()),
        timeout: Duration::from_millis(500),
        max_retries: 0,
        requests_per_minute: 0,
        temperature: 0.25,
        max_tokens: 256,
        breaker_failures: 5,
        breaker_cooldown: Duration::from_millis(200),
        embedding_model: None,
    }
}

fn anthropic(llm: &FakeLlm, name: &str) -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Anthropic,
        base_url: Some(llm.root_url()),
        model: "claude-fake".into(),
        api_key: Some("sk-ant-test".into()),
        ..openai(llm, name)
    }
}

/// A chain of one provider, with short retry delays.
fn single(cfg: &ProviderConfig) -> ProviderChain {
    chain(std::slice::from_ref(cfg))
}

fn chain(cfgs: &[ProviderConfig]) -> ProviderChain {
    let guarded = cfgs
        .iter()
        .map(|cfg| {
            let provider: Arc<dyn helios_nl::provider::ChatProvider> = match cfg.kind {
                ProviderKind::Openai => Arc::new(OpenAiProvider::new(cfg).unwrap()),
                ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(cfg).unwrap()),
                ProviderKind::Builtin => unreachable!("no model to call"),
            };
            Guarded::new(provider, cfg).with_backoff(Duration::from_millis(10))
        })
        .collect();
    ProviderChain::new(guarded)
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::system("You write one read-only PostgreSQL statement."),
            ChatMessage::user(
                "CREATE TABLE customers (id int, name text);\n\nQuestion: how many customers?",
            ),
        ],
    }
}

fn only(errors: Vec<ProviderError>) -> ProviderError {
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

#[tokio::test]
async fn openai_kind_returns_text_and_usage_and_sends_its_settings() {
    let llm = FakeLlm::start().await;
    llm.reply_text_usage("SELECT count(*) FROM customers", 42, 7);
    let chain = ProviderChain::from_config(&[openai(&llm, "fake-openai")]).unwrap();
    let answer = chain.complete(&request()).await.unwrap();
    assert_eq!(answer.content, "SELECT count(*) FROM customers");
    assert_eq!(answer.provider, "fake-openai");
    assert_eq!((answer.tokens_in, answer.tokens_out), (42, 7));

    assert_eq!(llm.calls(), 1);
    let sent = llm.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.model(), Some("gpt-fake"));
    let temperature = sent.body["temperature"].as_f64().unwrap();
    assert!((temperature - 0.25).abs() < 1e-6, "{temperature}");
    // A compatible server gets `max_tokens` (OpenAI itself would get
    // `max_completion_tokens`).
    assert_eq!(sent.body["max_tokens"], 256);
    assert_eq!(sent.body["stream"], false);
    let messages = sent.messages();
    assert_eq!(messages[0].0, "system");
    assert_eq!(messages[1].0, "user");
    assert!(sent.prompt().contains("how many customers?"));
}

#[tokio::test]
async fn openai_kind_without_v1_prefix_or_api_key() {
    let llm = FakeLlm::start().await;
    llm.reply_text("SELECT 1");
    let mut cfg = openai(&llm, "local");
    cfg.base_url = Some(llm.root_url());
    cfg.api_key = None;
    let answer = single(&cfg).complete(&request()).await.unwrap();
    assert_eq!(answer.content, "SELECT 1");
    let sent = llm.last_request().unwrap();
    assert_eq!(sent.path, "/chat/completions");
    // Counted from the words when the server reports its own usage.
    assert!(answer.tokens_in > 5 && answer.tokens_out == 2, "{answer:?}");
    let auth = sent.header("authorization").unwrap_or("");
    assert!(!auth.contains("sk-"), "no key sent: {auth:?}");
}

#[tokio::test]
async fn anthropic_kind_returns_text_and_usage_and_sends_its_headers() {
    let llm = FakeLlm::start().await;
    llm.reply_text_usage("SELECT count(*) FROM customers", 30, 9);
    let chain = ProviderChain::from_config(&[anthropic(&llm, "fake-claude")]).unwrap();
    let answer = chain.complete(&request()).await.unwrap();
    assert_eq!(answer.content, "SELECT count(*) FROM customers");
    assert_eq!(answer.provider, "fake-claude");
    assert_eq!((answer.tokens_in, answer.tokens_out), (30, 9));

    let sent = llm.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.model(), Some("claude-fake"));
    assert_eq!(sent.body["max_tokens"], 256);
    assert_eq!(
        sent.body["system"],
        "You write one read-only PostgreSQL statement."
    );
    let messages = sent.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "system is not a message: {messages:?}");
    assert_eq!(messages[0]["role"], "user");
    assert!(messages[0]["content"]
        .as_str()
        .unwrap()
        .contains("how many customers?"));
}

#[tokio::test]
async fn a_500_then_success_is_retried() {
    let llm = FakeLlm::start().await;
    llm.reply_status(500, "boom").reply_text("SELECT 1");
    let mut cfg = openai(&llm, "p");
    cfg.max_retries = 2;
    let answer = single(&cfg).complete(&request()).await.unwrap();
    assert_eq!(answer.content, "SELECT 1");
    assert_eq!(llm.calls(), 2);
}

#[tokio::test]
async fn a_429_and_anthropic_529_are_retried_but_401_is_not() {
    let llm = FakeLlm::start().await;
    llm.reply_status(
        429,
        r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
    )
    .reply_text("SELECT 1");
    let mut cfg = openai(&llm, "p");
    cfg.max_retries = 1;
    assert!(single(&cfg).complete(&request()).await.is_ok());
    assert_eq!(llm.calls(), 2);

    let claude = FakeLlm::start().await;
    claude
        .reply_status(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .reply_text("SELECT 2");
    let mut cfg = anthropic(&claude, "c");
    cfg.max_retries = 1;
    assert_eq!(
        single(&cfg).complete(&request()).await.unwrap().content,
        "SELECT 2"
    );
    assert_eq!(claude.calls(), 2);

    let denied = FakeLlm::start().await;
    denied
        .reply_status(
            401,
            r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#,
        )
        .reply_text("SELECT 3");
    let mut cfg = openai(&denied, "d");
    cfg.max_retries = 3;
    match only(single(&cfg).complete(&request()).await.unwrap_err()) {
        ProviderError::Status {
            status, message, ..
        } => {
            assert_eq!(status, 401);
            assert!(message.contains("bad key"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(denied.calls(), 1);
}

#[tokio::test]
async fn a_provider_failing_every_time_falls_back_to_the_next() {
    let broken = FakeLlm::start().await;
    let good = FakeLlm::start().await;
    good.reply_text("SELECT 42");
    let mut first = openai(&broken, "broken");
    first.max_retries = 1;
    let chain = chain(&[first, anthropic(&good, "good")]);
    let answer = chain.complete(&request()).await.unwrap();
    assert_eq!(answer.content, "SELECT 42");
    assert_eq!(answer.provider, "good");
    // The script is empty: 500 each time, once plus one retry.
    assert_eq!(broken.calls(), 2);
    assert_eq!(good.calls(), 1);

    // Nobody answers: every provider's error, in order.
    let errors = chain.complete(&request()).await.unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(
        matches!(&errors[0], ProviderError::Status { status: 500, provider, .. } if provider == "broken")
    );
    assert!(
        matches!(&errors[1], ProviderError::Status { status: 500, message, .. } if message.contains("script exhausted")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_provider_that_times_out_falls_back_within_the_timeout() {
    let slow = FakeLlm::start().await;
    slow.reply_delay(Duration::from_secs(5), "SELECT 'late'");
    let good = FakeLlm::start().await;
    good.reply_text("SELECT 'on time'");
    let mut first = openai(&slow, "slow");
    first.timeout = Duration::from_millis(200);
    let chain = chain(&[first, openai(&good, "good")]);

    let started = Instant::now();
    let answer = chain.complete(&request()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer.content, "SELECT 'on time'");
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert_eq!(slow.calls(), 1);

    // Alone, the slow one reports the timeout.
    slow.reply_delay(Duration::from_secs(5), "SELECT 'late'");
    let mut alone = openai(&slow, "slow");
    alone.timeout = Duration::from_millis(200);
    match only(single(&alone).complete(&request()).await.unwrap_err()) {
        ProviderError::Timeout { after, .. } => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_breaker_opens_after_n_failures_and_half_opens_after_the_cooldown() {
    let llm = FakeLlm::start().await;
    let mut cfg = openai(&llm, "flaky");
    cfg.breaker_failures = 3;
    cfg.breaker_cooldown = Duration::from_millis(200);
    let chain = single(&cfg);

    for _ in 0..3 {
        let error = only(chain.complete(&request()).await.unwrap_err());
        assert!(
            matches!(error, ProviderError::Status { status: 500, .. }),
            "{error}"
        );
    }
    assert_eq!(chain.breaker_states(), vec![("flaky", BreakerState::Open)]);

    // Open: fails fast, without reaching the server.
    let started = Instant::now();
    for _ in 0..5 {
        let error = only(chain.complete(&request()).await.unwrap_err());
        assert!(
            matches!(error, ProviderError::BreakerOpen { .. }),
            "{error}"
        );
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(llm.calls(), 3);

    // After the cooldown: half-open; a failed trial opens it again.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(chain.breaker_states()[0].1, BreakerState::HalfOpen);
    let error = only(chain.complete(&request()).await.unwrap_err());
    assert!(
        matches!(error, ProviderError::Status { status: 500, .. }),
        "{error}"
    );
    assert_eq!(llm.calls(), 4);
    assert_eq!(chain.breaker_states()[0].1, BreakerState::Open);
    let error = only(chain.complete(&request()).await.unwrap_err());
    assert!(
        matches!(error, ProviderError::BreakerOpen { .. }),
        "{error}"
    );
    assert_eq!(llm.calls(), 4);

    // Half-open again; a successful trial closes it.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(chain.breaker_states()[0].1, BreakerState::HalfOpen);
    llm.reply_text("SELECT 1").reply_text("SELECT 2");
    assert_eq!(
        chain.complete(&request()).await.unwrap().content,
        "SELECT 1"
    );
    assert_eq!(chain.breaker_states()[0].1, BreakerState::Closed);
    assert_eq!(
        chain.complete(&request()).await.unwrap().content,
        "SELECT 2"
    );
    assert_eq!(llm.calls(), 6);
}

#[tokio::test]
async fn an_open_breaker_moves_straight_to_the_next_provider() {
    let broken = FakeLlm::start().await;
    let good = FakeLlm::start().await;
    let mut first = openai(&broken, "broken");
    first.breaker_failures = 1;
    first.breaker_cooldown = Duration::from_secs(60);
    let chain = chain(&[first, openai(&good, "good")]);
    good.reply_text("SELECT 1").reply_text("SELECT 2");
    assert_eq!(
        chain.complete(&request()).await.unwrap().content,
        "SELECT 1"
    );
    assert_eq!(
        chain.complete(&request()).await.unwrap().content,
        "SELECT 2"
    );
    assert_eq!(broken.calls(), 1);
    assert_eq!(
        chain.breaker_states(),
        vec![
            ("broken", BreakerState::Open),
            ("good", BreakerState::Closed)
        ]
    );
}

#[tokio::test]
async fn requests_per_minute_refuses_a_call_it_cannot_wait_for() {
    let llm = FakeLlm::start().await;
    let fallback = FakeLlm::start().await;
    llm.reply_text("SELECT 1").reply_text("SELECT 2");
    fallback.reply_text("SELECT 'fallback'");
    let mut cfg = openai(&llm, "limited");
    // One request per minute: the next permit is ~60 s away, far beyond the
    // 500 ms timeout, so the second call is refused at once.
    cfg.requests_per_minute = 1;
    let limited = single(&cfg);
    assert_eq!(
        limited.complete(&request()).await.unwrap().content,
        "SELECT 1"
    );
    let started = Instant::now();
    let error = only(limited.complete(&request()).await.unwrap_err());
    assert!(
        matches!(error, ProviderError::RateLimited { .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(llm.calls(), 1);
    // Being rate limited is not a provider failure.
    assert_eq!(limited.breaker_states()[0].1, BreakerState::Closed);

    // In a chain (with a fresh limit), the next provider answers once the
    // first is over its limit.
    let chain = chain(&[cfg, openai(&fallback, "fallback")]);
    assert_eq!(
        chain.complete(&request()).await.unwrap().content,
        "SELECT 2"
    );
    assert_eq!(
        chain.complete(&request()).await.unwrap().content,
        "SELECT 'fallback'"
    );
}

#[tokio::test]
async fn malformed_json_is_malformed_and_not_retried() {
    let llm = FakeLlm::start().await;
    llm.reply_garbage().reply_text("SELECT 1");
    let mut cfg = openai(&llm, "p");
    cfg.max_retries = 2;
    let error = only(single(&cfg).complete(&request()).await.unwrap_err());
    assert!(matches!(error, ProviderError::Malformed { .. }), "{error}");
    assert_eq!(llm.calls(), 1);

    let claude = FakeLlm::start().await;
    claude.reply_garbage();
    let error = only(
        single(&anthropic(&claude, "c"))
            .complete(&request())
            .await
            .unwrap_err(),
    );
    assert!(matches!(error, ProviderError::Malformed { .. }), "{error}");

    // Valid JSON without choices is malformed too.
    let empty = FakeLlm::start().await;
    empty.reply_status(200, r#"{"choices": []}"#);
    let error = only(
        single(&openai(&empty, "e"))
            .complete(&request())
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&error, ProviderError::Malformed { message, .. } if message.contains("no choices")),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transport_error() {
    let llm = FakeLlm::start().await;
    let mut cfg = openai(&llm, "gone");
    drop(llm);
    cfg.max_retries = 1;
    let error = only(single(&cfg).complete(&request()).await.unwrap_err());
    assert!(matches!(error, ProviderError::Transport { .. }), "{error}");
}

#[tokio::test]
async fn embeddings_come_from_the_first_provider_that_has_them() {
    let plain = FakeLlm::start().await;
    let embedder = FakeLlm::start().await;
    let mut with_embeddings = openai(&embedder, "embedder");
    with_embeddings.embedding_model = Some("embed-fake".into());
    let chain = chain(&[openai(&plain, "plain"), with_embeddings]);

    let texts = vec![
        "top customers by revenue".to_string(),
        "customers by revenue".to_string(),
        "weather in paris".to_string(),
    ];
    let vectors = chain.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 3);
    for (v, t) in vectors.iter().zip(&texts) {
        assert_eq!(v, &llm::embed_text(t));
    }
    assert!(llm::cosine(&vectors[0], &vectors[1]) > 0.8);
    assert!(llm::cosine(&vectors[0], &vectors[2]) < 0.3);

    assert_eq!(plain.requests().len(), 0);
    assert_eq!(embedder.embedding_calls(), 1);
    assert_eq!(embedder.calls(), 0);
    let sent = &embedder.requests()[0];
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.model(), Some("embed-fake"));
    assert_eq!(sent.embedding_inputs(), texts);

    // A failing embeddings endpoint: no vectors, no panic.
    embedder.fail_embeddings(Some((500, "down")));
    assert_eq!(chain.embed(&texts).await, None);

    // Without any embedding model: none.
    let none = chain_without_embeddings(&plain);
    assert_eq!(none.embed(&texts).await, None);
}

fn chain_without_embeddings(llm: &FakeLlm) -> ProviderChain {
    single(&openai(llm, "plain"))
}

#[test]
fn the_fake_server_answers_blocking_tests_too() {
    let llm = FakeLlm::start_blocking();
    llm.reply_text("SELECT 1");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime
        .block_on(single(&openai(&llm, "p")).complete(&request()))
        .unwrap();
    assert_eq!(answer.content, "SELECT 1");
    assert_eq!(llm.pending(), 0);
}
