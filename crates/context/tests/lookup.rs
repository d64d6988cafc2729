//! Lookups over real HTTP on loopback against the CRM test server.

use std::time::{Duration, Instant};

use homeagent_context::{
    CallInfo, ContextClient, ContextConfig, ContextError, CustomerContext, FieldMapping,
    TemplateError,
};
use homeagent_testkit::crm_server::{CrmMode, CrmServer};
use serde_json::json;

fn server() -> CrmServer {
    CrmServer::start().unwrap_or_else(|e| panic!("CRM server: {e}"))
}

fn client(config: ContextConfig) -> ContextClient {
    ContextClient::new(config).unwrap_or_else(|e| panic!("client: {e}"))
}

fn config(crm: &CrmServer, path: &str) -> ContextConfig {
    ContextConfig {
        url_template: format!("{}{path}", crm.base_url()),
        ..ContextConfig::default()
    }
}

fn call() -> CallInfo {
    CallInfo {
        from: "+441234567890".into(),
        to: "4000".into(),
        headers: vec![
            ("Via".into(), "SIP/2.0/UDP 10.0.0.1".into()),
            ("x-customer-id".into(), "A B&C/Ü".into()),
        ],
    }
}

async fn lookup(client: &ContextClient) -> Result<CustomerContext, ContextError> {
    client.lookup(&call()).await
}

#[tokio::test]
async fn fills_the_template_and_maps_top_level_fields_by_default() {
    let crm = server();
    let client = client(config(
        &crm,
        "/customers/{from}?id={header:X-Customer-Id}&to={to}&none={header:X-None}",
    ));
    let card = lookup(&client)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));

    let paths: Vec<String> = crm
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    assert_eq!(
        paths,
        ["/customers/%2B441234567890?id=A%20B%26C%2F%C3%9C&to=4000&none="]
    );
    // Every top-level scalar, in the order the CRM sent them (the address object is left out).
    let sent = CrmServer::sample_customer();
    let expected: Vec<(String, String)> = sent
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_object())
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => (key.clone(), text.clone()),
            other => (key.clone(), other.to_string()),
        })
        .collect();
    assert_eq!(expected.len(), 6);
    assert_eq!(card.fields, expected);
    assert_eq!(card.value("open_tickets"), Some("2"));
    assert_eq!(card.value("vip"), Some("true"));
}

#[tokio::test]
async fn maps_nested_paths_in_the_configured_order() {
    let crm = server();
    crm.set_mode(CrmMode::Ok(json!({
        "customer": {"name": "Grace Hopper", "address": {"city": "Arlington"}},
        "tickets": [{"id": "T-1", "tags": ["billing", "urgent"]}],
    })));
    let client = client(ContextConfig {
        fields: vec![
            FieldMapping::new("City", "customer.address.city"),
            FieldMapping::new("Customer", "/customer/name"),
            FieldMapping::new("Phone", "customer.phone"),
            FieldMapping::new("Tags", "tickets.0.tags"),
        ],
        ..config(&crm, "/c/{from}")
    });
    let card = lookup(&client)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    assert_eq!(
        card.fields,
        [
            ("City".to_string(), "Arlington".to_string()),
            ("Customer".into(), "Grace Hopper".into()),
            ("Tags".into(), r#"["billing","urgent"]"#.into()),
        ]
    );
}

#[tokio::test]
async fn a_slow_crm_times_out_at_the_configured_bound_after_one_retry() {
    let crm = server();
    crm.set_mode(CrmMode::Slow(Duration::from_secs(3)));
    let client = client(ContextConfig {
        timeout: Duration::from_millis(300),
        ..config(&crm, "/c/{from}")
    });
    let started = Instant::now();
    let result = lookup(&client).await;
    let elapsed = started.elapsed();
    assert_eq!(result, Err(ContextError::Timeout));
    assert_eq!(crm.requests().len(), 2, "one retry");
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn a_503_is_retried_and_the_retry_succeeds() {
    let crm = server();
    crm.set_mode(CrmMode::FailFirst(503, json!({"name": "Second Try"})));
    let client = client(config(&crm, "/c/{from}"));
    let card = lookup(&client)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    assert_eq!(card.value("name"), Some("Second Try"));
    assert_eq!(crm.requests().len(), 2);
}

#[tokio::test]
async fn a_404_is_not_retried() {
    let crm = server();
    crm.set_mode(CrmMode::Status(404));
    let client = client(config(&crm, "/c/{from}"));
    assert_eq!(lookup(&client).await, Err(ContextError::Status(404)));
    assert_eq!(crm.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_as_configured() {
    let crm = server();
    crm.set_mode(CrmMode::Status(500));
    for (retries, requests) in [(0, 1), (1, 3), (2, 6)] {
        let client = client(ContextConfig {
            retries,
            ..config(&crm, "/c/{from}")
        });
        assert_eq!(lookup(&client).await, Err(ContextError::Status(500)));
        assert_eq!(crm.requests().len(), requests, "retries {retries}");
    }
}

#[tokio::test]
async fn unusable_answers_are_garbage_quickly_and_not_retried() {
    let crm = server();
    let cases = [
        (CrmMode::Html, "not JSON"),
        (CrmMode::Garbage(b"\xff\xfe{\"a\":1}".to_vec()), "not UTF-8"),
        (
            CrmMode::Garbage(b"[\"not\", \"an object\"]".to_vec()),
            "not a JSON object",
        ),
        (CrmMode::Huge, "more than 262144 bytes"),
    ];
    let client = client(config(&crm, "/c/{from}"));
    for (number, (mode, reason)) in cases.into_iter().enumerate() {
        crm.set_mode(mode.clone());
        let started = Instant::now();
        let result = lookup(&client).await;
        let elapsed = started.elapsed();
        assert_eq!(
            result,
            Err(ContextError::Garbage(reason.into())),
            "{mode:?}"
        );
        assert!(
            elapsed < Duration::from_millis(500),
            "{mode:?}: {elapsed:?}"
        );
        assert_eq!(crm.requests().len(), number + 1, "{mode:?} not retried");
    }
}

#[tokio::test]
async fn valid_json_with_a_wrong_content_type_is_accepted() {
    let crm = server();
    crm.set_mode(CrmMode::Garbage(br#"{"name": "Plain Text"}"#.to_vec()));
    let client = client(config(&crm, "/c/{from}"));
    let card = lookup(&client)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    assert_eq!(card.value("name"), Some("Plain Text"));
}

#[tokio::test]
async fn malicious_markup_comes_back_as_literal_text() {
    let crm = server();
    crm.set_mode(CrmMode::Malicious);
    let client = client(config(&crm, "/c/{from}"));
    let card = lookup(&client)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    assert_eq!(card.value("name"), Some("<img src=x onerror=alert(1)>"));
    assert_eq!(
        card.value("note"),
        Some("<script>alert(document.cookie)</script>")
    );
}

#[tokio::test]
async fn path_fixtures_answer_whatever_the_mode() {
    let crm = server();
    crm.set_mode(CrmMode::Status(500));
    let malicious = client(config(&crm, "/fixture/malicious?from={from}"));
    let card = lookup(&malicious)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    assert_eq!(card.value("name"), Some("<img src=x onerror=alert(1)>"));
    let forbidden = client(config(&crm, "/fixture/status/403"));
    assert_eq!(lookup(&forbidden).await, Err(ContextError::Status(403)));
}

#[tokio::test]
async fn the_auth_header_is_sent_and_never_shown() {
    let crm = server();
    let client = client(ContextConfig {
        auth_header: Some(("X-Api-Key".into(), "s3cret-token".into())),
        ..config(&crm, "/c/{from}")
    });
    let card = lookup(&client)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    let requests = crm.requests();
    assert_eq!(
        requests.first().and_then(|r| r.header("x-api-key")),
        Some("s3cret-token")
    );
    assert_eq!(
        requests.first().and_then(|r| r.header("accept")),
        Some("application/json")
    );
    let shown = format!("{client:?} {card:?} {:?}", call());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("Ada"), "{shown}");
    assert!(!shown.contains("1234567890"), "{shown}");
    assert!(shown.contains("\"name\": \"<redacted>\""), "{shown}");
}

#[tokio::test]
async fn an_unreachable_crm_is_unavailable() {
    let port = {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener.local_addr().map(|a| a.port()).unwrap_or_default()
    };
    let client = client(ContextConfig {
        url_template: format!("http://127.0.0.1:{port}/c/{{from}}"),
        ..ContextConfig::default()
    });
    let started = Instant::now();
    let result = lookup(&client).await;
    let Err(ContextError::Unavailable(reason)) = result else {
        panic!("{result:?}");
    };
    eprintln!("unreachable CRM: {reason}");
    assert!(
        !reason.contains("/c/") && !reason.contains("441234"),
        "no URL: {reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn bad_configurations_are_refused_up_front() {
    let refused = |config: ContextConfig| ContextClient::new(config).err();
    assert_eq!(
        refused(ContextConfig {
            url_template: "https://crm.test/{caller}".into(),
            ..ContextConfig::default()
        }),
        Some(ContextError::Template(TemplateError::UnknownPlaceholder(
            "caller".into()
        )))
    );
    let valid = ContextConfig {
        url_template: "https://crm.test/{from}".into(),
        ..ContextConfig::default()
    };
    assert!(matches!(
        refused(ContextConfig {
            auth_header: Some(("Bad Name".into(), "x".into())),
            ..valid.clone()
        }),
        Some(ContextError::Config(_))
    ));
    assert!(matches!(
        refused(ContextConfig {
            auth_header: Some(("Authorization".into(), "Bearer a\nb".into())),
            ..valid.clone()
        }),
        Some(ContextError::Config(_))
    ));
    assert!(matches!(
        refused(ContextConfig {
            timeout: Duration::ZERO,
            ..valid.clone()
        }),
        Some(ContextError::Config(_))
    ));
    assert!(ContextClient::new(valid).is_ok());
}

/// The figure: median latency of 20 lookups against a CRM answering in 50 ms.
/// `cargo test -p homeagent-context --test lookup -- --nocapture median`
#[tokio::test]
async fn median_latency_against_a_50_ms_crm() {
    let crm = server();
    crm.set_delay(Duration::from_millis(50));
    let client = client(config(&crm, "/c/{from}"));
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let card = lookup(&client)
            .await
            .unwrap_or_else(|e| panic!("lookup: {e}"));
        latencies.push(started.elapsed());
        assert_eq!(card.value("name"), Some("Ada Lovelace"));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2]; // 20 samples: index 10 exists
    let max = latencies.last().copied().unwrap_or_default();
    eprintln!(
        "customer context lookup, CRM answering in 50 ms: median {:.1} ms, max {:.1} ms (20 lookups)",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(median >= Duration::from_millis(50), "{median:?}");
    assert!(median < Duration::from_millis(150), "{median:?}");
}
