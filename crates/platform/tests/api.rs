//! The HTTP contract against the platform test server: session, state, wrap-ups, error classes.

use std::time::Duration;

use homeagent_platform::{AgentState, HttpPlatform, PlatformError, Submitted, Wrapup};
use homeagent_testkit::platform_server::PlatformServer;
use serde_json::json;

fn platform(server: &PlatformServer, token: Option<&str>) -> HttpPlatform {
    HttpPlatform::new(
        &server.base_url(),
        "agent01",
        token.map(str::to_owned),
        Duration::from_secs(5),
    )
    .expect("the test server's URL is valid")
}

#[tokio::test]
async fn login_state_submit_logout_round_trip_with_token() {
    let server = PlatformServer::start().expect("server starts");
    server.require_token("t0k3n");
    let platform = platform(&server, Some("t0k3n"));

    platform.login().await.expect("login");
    platform.set_state(&AgentState::Ready).await.expect("ready");
    platform
        .set_state(&AgentState::NotReady {
            reason: "lunch".into(),
        })
        .await
        .expect("break");
    let wrapup = Wrapup::new(
        "abc@10.0.0.1",
        "agent01",
        "sale",
        "Upgraded plan",
        1_764_000_000_123,
    );
    assert_eq!(
        platform.submit(&wrapup).await.expect("submit"),
        Submitted::Created
    );
    platform.logout().await.expect("logout");

    assert_eq!(
        server.sessions(),
        vec![("agent01".to_owned(), true), ("agent01".to_owned(), false)]
    );
    assert_eq!(
        server.states(),
        vec![
            json!({"agent": "agent01", "state": "ready", "reason": null}),
            json!({"agent": "agent01", "state": "not_ready", "reason": "lunch"}),
        ]
    );
    let stored = serde_json::to_value(&wrapup).expect("a wrap-up serializes");
    assert_eq!(server.wrapups(), vec![stored]);
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_unauthorized_and_temporary() {
    let server = PlatformServer::start().expect("server starts");
    server.require_token("right");
    for token in [None, Some("wrong")] {
        let error = platform(&server, token).login().await.expect_err("refused");
        assert!(
            matches!(error, PlatformError::Unauthorized { status: 401 }),
            "{error:?}"
        );
        assert!(error.is_temporary());
    }
    assert!(server.sessions().is_empty());
}

#[tokio::test]
async fn the_same_wrapup_twice_is_stored_once_and_answered_duplicate() {
    let server = PlatformServer::start().expect("server starts");
    let platform = platform(&server, None);
    let wrapup = Wrapup::new("call-1", "agent01", "callback", "", 42);

    assert_eq!(
        platform.submit(&wrapup).await.expect("first"),
        Submitted::Created
    );
    assert_eq!(
        platform.submit(&wrapup).await.expect("second"),
        Submitted::Duplicate
    );

    assert_eq!(server.receipts(&wrapup.key), 2);
    assert_eq!(server.wrapups().len(), 1);
}

#[tokio::test]
async fn error_classes_unavailable_refused_and_lost_answer() {
    let server = PlatformServer::start().expect("server starts");
    let platform = HttpPlatform::new(
        &server.base_url(),
        "agent01",
        None,
        Duration::from_millis(200),
    )
    .expect("valid URL");

    server.set_available(false);
    let error = platform
        .set_state(&AgentState::OnCall)
        .await
        .expect_err("503");
    assert!(matches!(error, PlatformError::Unavailable(_)), "{error:?}");
    server.set_available(true);

    let refused = Wrapup::new("call-2", "agent01", "", "no disposition", 1);
    let error = platform.submit(&refused).await.expect_err("422");
    assert!(
        matches!(error, PlatformError::Rejected { status: 422 }),
        "{error:?}"
    );
    assert!(!error.is_temporary());

    // The platform stores it but answers too late: a timeout, then a duplicate on retry.
    server.set_delay(Duration::from_millis(600));
    let slow = Wrapup::new("call-3", "agent01", "sale", "", 1);
    let error = platform.submit(&slow).await.expect_err("timeout");
    assert!(matches!(error, PlatformError::Unavailable(_)), "{error:?}");
    server.set_delay(Duration::ZERO);
    assert_eq!(
        platform.submit(&slow).await.expect("retry"),
        Submitted::Duplicate
    );
    assert_eq!(server.wrapups().len(), 1);
}

#[tokio::test]
async fn nobody_listening_is_unavailable() {
    let base_url = {
        let server = PlatformServer::start().expect("server starts");
        server.base_url()
    };
    let platform =
        HttpPlatform::new(&base_url, "agent01", None, Duration::from_secs(2)).expect("valid URL");
    let error = platform.login().await.expect_err("connection refused");
    assert!(matches!(error, PlatformError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn state_events_deliver_the_platform_pushes_for_this_agent() {
    let server = PlatformServer::start().expect("server starts");
    server.require_token("t0k3n");
    let platform = platform(&server, Some("t0k3n"));
    let mut events = platform.state_events().await.expect("event stream opens");

    server.push_state("someone-else", json!({"state": "ready", "reason": null}));
    server.push_state("agent01", json!({"state": "bogus", "reason": null}));
    server.push_state(
        "agent01",
        json!({"state": "not_ready", "reason": "supervisor"}),
    );
    server.push_state("agent01", json!({"state": "ready", "reason": null}));
    let within = Duration::from_secs(5);
    let first = tokio::time::timeout(within, events.next())
        .await
        .expect("in time")
        .expect("ok");
    assert_eq!(
        first,
        Some(AgentState::NotReady {
            reason: "supervisor".into()
        })
    );
    let second = tokio::time::timeout(within, events.next())
        .await
        .expect("in time")
        .expect("ok");
    assert_eq!(second, Some(AgentState::Ready));

    let error = self::platform(&server, None)
        .state_events()
        .await
        .expect_err("no token");
    assert!(
        matches!(error, PlatformError::Unauthorized { status: 401 }),
        "{error:?}"
    );
}
