//! A platform test server implementing `docs/platform-api.yaml` on 127.0.0.1.
//!
//! It runs on its own thread with its own tokio runtime (the test kit is synchronous), records
//! what it receives, and can be made unavailable (every request answers 503), slow (each answer
//! comes after a delay, *after* the request took effect: the case of an answer lost to a crash
//! or a timeout), or strict about the bearer token. It stops on `Drop`.
//!
//! Wrap-ups are stored once per `Idempotency-Key`: a second POST with a stored key answers 200
//! (duplicate) and stores nothing; [`PlatformServer::receipts`] counts every POST per key, even
//! those answered 503. A wrap-up with an empty `disposition` answers 422 (refused for good).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

/// The states the contract knows.
const STATES: [&str; 5] = [
    "ready",
    "not_ready",
    "on_call",
    "after_call_work",
    "logged_out",
];

/// A running platform test server; stops on `Drop`.
#[derive(Debug)]
pub struct PlatformServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PlatformServer {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> std::io::Result<PlatformServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            records: Mutex::new(Records::default()),
            events,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("platform-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            eprintln!("platform server: {e}");
                            return;
                        }
                    };
                    // Not a graceful shutdown: open event streams would hold it forever.
                    tokio::select! {
                        served = axum::serve(listener, app) => {
                            if let Err(e) = served {
                                eprintln!("platform server: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(PlatformServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`, the base URL the contract's paths are relative to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `false`: every request answers 503 (and takes no effect) until set back to `true`.
    pub fn set_available(&self, available: bool) {
        self.shared.records().unavailable = !available;
    }

    /// Every answer comes this long after its request took effect.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.records().delay = delay;
    }

    /// From now on, requests without `Authorization: Bearer <token>` answer 401.
    pub fn require_token(&self, token: &str) {
        self.shared.records().token = Some(token.to_owned());
    }

    /// The stored wrap-ups (one per key), in arrival order, as received.
    pub fn wrapups(&self) -> Vec<Value> {
        self.shared.records().wrapups.clone()
    }

    /// How many wrap-up POSTs with this `Idempotency-Key` arrived (whatever the answer).
    pub fn receipts(&self, key: &str) -> usize {
        self.shared
            .records()
            .receipts
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// The state changes received, in order: `{"agent":…,"state":…,"reason":…}`.
    pub fn states(&self) -> Vec<Value> {
        self.shared.records().states.clone()
    }

    /// Log-ins (`true`) and log-outs (`false`) received, in order.
    pub fn sessions(&self) -> Vec<(String, bool)> {
        self.shared.records().sessions.clone()
    }

    /// Sends `state` (e.g. `{"state":"not_ready","reason":"supervisor"}`) as a Server-Sent Event
    /// to the agent's open `GET /agents/{agent}/events` streams.
    pub fn push_state(&self, agent: &str, state: Value) {
        // No open stream is not an error: the event is simply not seen.
        let _ = self.shared.events.send((agent.to_owned(), state));
    }
}

impl Drop for PlatformServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug)]
struct Shared {
    records: Mutex<Records>,
    events: broadcast::Sender<(String, Value)>,
}

impl Shared {
    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, Default)]
struct Records {
    unavailable: bool,
    delay: Duration,
    token: Option<String>,
    wrapups: Vec<Value>,
    receipts: HashMap<String, usize>,
    states: Vec<Value>,
    sessions: Vec<(String, bool)>,
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/agents/{agent}/session", post(login).delete(logout))
        .route("/agents/{agent}/state", put(set_state))
        .route("/agents/{agent}/events", get(events))
        .route("/wrapups", post(submit_wrapup))
        .with_state(shared)
}

async fn login(
    State(shared): State<Arc<Shared>>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Response {
    session(&shared, &headers, agent, true).await
}

async fn logout(
    State(shared): State<Arc<Shared>>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Response {
    session(&shared, &headers, agent, false).await
}

async fn session(shared: &Shared, headers: &HeaderMap, agent: String, logged_in: bool) -> Response {
    let delay = {
        let mut records = shared.records();
        if let Some(refusal) = refusal(&records, headers) {
            return refusal;
        }
        records.sessions.push((agent, logged_in));
        records.delay
    };
    answer_after(delay, StatusCode::NO_CONTENT).await
}

async fn set_state(
    State(shared): State<Arc<Shared>>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = {
        let mut records = shared.records();
        if let Some(refusal) = refusal(&records, &headers) {
            return refusal;
        }
        let Some((state, reason)) = parse_state(&body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        records
            .states
            .push(serde_json::json!({ "agent": agent, "state": state, "reason": reason }));
        records.delay
    };
    answer_after(delay, StatusCode::NO_CONTENT).await
}

async fn submit_wrapup(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (delay, status) = {
        let mut records = shared.records();
        if let Some(key) = &idempotency_key {
            *records.receipts.entry(key.clone()).or_default() += 1;
        }
        if let Some(refusal) = refusal(&records, &headers) {
            return refusal;
        }
        let Some(wrapup) = parse_wrapup(&body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let Some(key) = idempotency_key.filter(|key| Some(key.as_str()) == wrapup["key"].as_str())
        else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let status = if wrapup["disposition"].as_str() == Some("") {
            StatusCode::UNPROCESSABLE_ENTITY
        } else if records
            .wrapups
            .iter()
            .any(|stored| stored["key"].as_str() == Some(&key))
        {
            StatusCode::OK
        } else {
            records.wrapups.push(wrapup);
            StatusCode::CREATED
        };
        (records.delay, status)
    };
    answer_after(delay, status).await
}

async fn events(
    State(shared): State<Arc<Shared>>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refusal(&shared.records(), &headers) {
        return refusal;
    }
    let receiver = shared.events.subscribe();
    let stream = futures_util::stream::unfold(receiver, move |mut receiver| {
        let agent = agent.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok((to, state)) if to == agent => {
                        let event = Event::default().data(state.to_string());
                        return Some((Ok::<Event, Infallible>(event), receiver));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// 503 when unavailable, 401 when the token is required and missing or wrong.
fn refusal(records: &Records, headers: &HeaderMap) -> Option<Response> {
    if records.unavailable {
        return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    let expected = records.token.as_ref()?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented == Some(expected.as_str()) {
        None
    } else {
        Some(StatusCode::UNAUTHORIZED.into_response())
    }
}

async fn answer_after(delay: Duration, status: StatusCode) -> Response {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    status.into_response()
}

/// `{"state": one of STATES, "reason": string|null}`.
fn parse_state(body: &[u8]) -> Option<(String, Value)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let state = value.get("state")?.as_str()?;
    let reason = value.get("reason")?;
    if !STATES.contains(&state) || !(reason.is_null() || reason.is_string()) {
        return None;
    }
    Some((state.to_owned(), reason.clone()))
}

/// A wrap-up with every field of the contract, of the right type.
fn parse_wrapup(body: &[u8]) -> Option<Value> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let strings = ["key", "call_id", "agent", "disposition", "note"];
    let complete = strings
        .iter()
        .all(|field| value.get(field).is_some_and(Value::is_string))
        && value.get("ended_at_ms").is_some_and(Value::is_u64);
    complete.then_some(value)
}
