//! A CRM test server for the customer-context lookups: HTTP on 127.0.0.1, fixtures chosen
//! with [`CrmServer::set_mode`] or by path (`/fixture/<name>`), every request recorded.
//!
//! Path fixtures override the mode: `/fixture/ok`, `/fixture/slow` (3 s), `/fixture/html`,
//! `/fixture/malicious`, `/fixture/huge`, `/fixture/garbage`, `/fixture/status/<code>`.
//!
//! The server runs on its own thread and tokio runtime; dropping it stops it and aborts the
//! requests in progress (a slow fixture never delays the end of a test).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The body of [`CrmMode::Huge`]: 10 MB.
pub const HUGE_BODY_BYTES: usize = 10 * 1024 * 1024;
/// How long `/fixture/slow` waits.
pub const SLOW_FIXTURE_DELAY: Duration = Duration::from_secs(3);

/// What the CRM answers.
#[derive(Debug, Clone, PartialEq)]
pub enum CrmMode {
    /// 200 with this JSON.
    Ok(Value),
    /// Waits this long, then answers [`CrmServer::sample_customer`].
    Slow(Duration),
    /// This HTTP status with a small JSON error body.
    Status(u16),
    /// 200 with these bytes as `text/plain` (so valid JSON here tests a wrong content type).
    Garbage(Vec<u8>),
    /// 200 with an HTML error page (a proxy's "502 Bad Gateway").
    Html,
    /// A customer whose name is `<img src=x onerror=alert(1)>` and whose note holds a
    /// `<script>`: see [`CrmServer::malicious_customer`].
    Malicious,
    /// 200 with a 10 MB JSON object, sent chunked (no `Content-Length`).
    Huge,
    /// The first request after this mode is set answers this status; the next ones this JSON.
    FailFirst(u16, Value),
}

/// One request the CRM received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRequest {
    /// For example `/customers?phone=%2B331234`.
    pub path_and_query: String,
    /// Every header, names lower-case, values lossily decoded.
    pub headers: Vec<(String, String)>,
}

impl CrmRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The running server. Stops on `Drop`.
#[derive(Debug)]
pub struct CrmServer {
    addr: SocketAddr,
    fixtures: Arc<Mutex<Fixtures>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Fixtures {
    mode: CrmMode,
    delay: Duration,
    requests: Vec<CrmRequest>,
    /// Requests answered since the mode was set (for [`CrmMode::FailFirst`]).
    answered_in_mode: usize,
}

impl CrmServer {
    /// Starts on 127.0.0.1 with an OS-chosen port, answering [`CrmServer::sample_customer`].
    pub fn start() -> std::io::Result<CrmServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let fixtures = Arc::new(Mutex::new(Fixtures {
            mode: CrmMode::Ok(Self::sample_customer()),
            delay: Duration::ZERO,
            requests: Vec::new(),
            answered_in_mode: 0,
        }));
        let router = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&fixtures));
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("crm-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = axum::serve(listener, router) => {}
                        _ = stop => {}
                    }
                });
                // Dropping the runtime aborts the connections still being answered.
                drop(runtime);
            })?;
        Ok(CrmServer {
            addr,
            fixtures,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<CrmRequest> {
        lock(&self.fixtures).requests.clone()
    }

    /// Answers with `mode` from now on (and restarts [`CrmMode::FailFirst`]).
    pub fn set_mode(&self, mode: CrmMode) {
        let mut fixtures = lock(&self.fixtures);
        fixtures.mode = mode;
        fixtures.answered_in_mode = 0;
    }

    /// Waits this long before every answer (on top of [`CrmMode::Slow`]).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.fixtures).delay = delay;
    }

    /// A fictional customer: `{"id", "name", "phone", "tier", "open_tickets", "vip",
    /// "address": {"city", "country"}}`.
    pub fn sample_customer() -> Value {
        json!({
            "id": "C-1001",
            "name": "Ada Lovelace",
            "phone": "+441234567890",
            "tier": "gold",
            "open_tickets": 2,
            "vip": true,
            "address": {"city": "London", "country": "UK"},
        })
    }

    /// The customer of [`CrmMode::Malicious`].
    pub fn malicious_customer() -> Value {
        json!({
            "id": "C-666",
            "name": "<img src=x onerror=alert(1)>",
            "note": "<script>alert(document.cookie)</script>",
        })
    }
}

impl Drop for CrmServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(fixtures: &Mutex<Fixtures>) -> MutexGuard<'_, Fixtures> {
    fixtures.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records the request, waits the delay, answers the fixture.
async fn answer(State(fixtures): State<Arc<Mutex<Fixtures>>>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let (mode, delay, answered_before) = {
        let mut fixtures = lock(&fixtures);
        fixtures.requests.push(CrmRequest {
            path_and_query,
            headers,
        });
        let answered_before = fixtures.answered_in_mode;
        fixtures.answered_in_mode += 1;
        let mode = path_fixture(request.uri().path()).unwrap_or_else(|| fixtures.mode.clone());
        (mode, fixtures.delay, answered_before)
    };
    tokio::time::sleep(delay).await;
    respond(mode, answered_before).await
}

/// The fixture named by a `/fixture/<name>` path.
fn path_fixture(path: &str) -> Option<CrmMode> {
    let name = path.strip_prefix("/fixture/")?;
    Some(match name {
        "ok" => CrmMode::Ok(CrmServer::sample_customer()),
        "slow" => CrmMode::Slow(SLOW_FIXTURE_DELAY),
        "html" => CrmMode::Html,
        "malicious" => CrmMode::Malicious,
        "huge" => CrmMode::Huge,
        "garbage" => CrmMode::Garbage(b"\xff\xfe\x00garbage{".to_vec()),
        _ => CrmMode::Status(name.strip_prefix("status/")?.parse().ok()?),
    })
}

async fn respond(mode: CrmMode, answered_before: usize) -> Response {
    match mode {
        CrmMode::Ok(value) => json_response(StatusCode::OK, &value),
        CrmMode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            json_response(StatusCode::OK, &CrmServer::sample_customer())
        }
        CrmMode::Status(code) => error_response(code),
        CrmMode::Garbage(bytes) => response(StatusCode::OK, "text/plain", Body::from(bytes)),
        CrmMode::Html => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Body::from(
                "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n\
                 <body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body>\
                 </html>\n",
            ),
        ),
        CrmMode::Malicious => json_response(StatusCode::OK, &CrmServer::malicious_customer()),
        CrmMode::Huge => {
            let mut body = Vec::with_capacity(HUGE_BODY_BYTES);
            body.extend_from_slice(b"{\"name\":\"Huge\",\"blob\":\"");
            body.resize(HUGE_BODY_BYTES - 2, b'a');
            body.extend_from_slice(b"\"}");
            // Through a stream, the body has no known length: it is sent chunked.
            let chunked = Body::from_stream(Body::from(body).into_data_stream());
            response(StatusCode::OK, "application/json", chunked)
        }
        CrmMode::FailFirst(code, value) => {
            if answered_before == 0 {
                error_response(code)
            } else {
                json_response(StatusCode::OK, &value)
            }
        }
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    response(status, "application/json", Body::from(value.to_string()))
}

fn error_response(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &json!({"error": "fixture status", "status": code}))
}

fn response(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_fixtures() {
        assert_eq!(
            path_fixture("/fixture/status/503"),
            Some(CrmMode::Status(503))
        );
        assert_eq!(path_fixture("/fixture/html"), Some(CrmMode::Html));
        assert_eq!(path_fixture("/fixture/status/x"), None);
        assert_eq!(path_fixture("/customers"), None);
    }

    #[test]
    fn starts_and_stops_quickly_with_a_request_in_progress() {
        let server = CrmServer::start().unwrap_or_else(|e| panic!("start: {e}"));
        server.set_mode(CrmMode::Slow(Duration::from_secs(30)));
        let mut stream =
            std::net::TcpStream::connect(server.addr()).unwrap_or_else(|e| panic!("connect: {e}"));
        std::io::Write::write_all(&mut stream, b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while server.requests().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            server.requests().first().map(|r| r.path_and_query.as_str()),
            Some("/x?y=1")
        );
        let started = std::time::Instant::now();
        drop(server);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
