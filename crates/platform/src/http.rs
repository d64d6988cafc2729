//! The platform's HTTP+JSON API (`docs/platform-api.yaml`) through `reqwest`.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::{AgentState, PlatformError, Wrapup};

/// The platform API for one agent.
///
/// The bearer token is sent as `Authorization: Bearer …`, marked sensitive, and never
/// printed (`Debug` redacts it).
pub struct HttpPlatform {
    client: reqwest::Client,
    base: Url,
    agent: String,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

/// How the platform took a wrap-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// First receipt of this key: stored (201).
    Created,
    /// This key was already stored; nothing stored twice (200).
    Duplicate,
}

impl HttpPlatform {
    /// `base_url` is IT's configured base (`http` or `https`); `timeout` bounds each request,
    /// from connecting to the end of the answer.
    pub fn new(
        base_url: &str,
        agent: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, PlatformError> {
        let invalid = |reason: &str| PlatformError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("not a base URL (query or fragment present?)"));
        }
        let authorization = match token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        PlatformError::Client(
                            "the token holds characters not allowed in a header".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        // No client-wide timeout: the event stream stays open; each other request has one.
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            // A redirect usually means a wrong base URL; following it would turn POST into GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("homeagent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PlatformError::Client(e.to_string()))?;
        Ok(HttpPlatform {
            client,
            base,
            agent: agent.to_owned(),
            authorization,
            timeout,
        })
    }

    /// The agent this connector speaks for.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// `POST /agents/{agent}/session`.
    pub async fn login(&self) -> Result<(), PlatformError> {
        let url = self.url(&["agents", &self.agent, "session"]);
        self.send(self.request(Method::POST, url)).await.map(drop)
    }

    /// `DELETE /agents/{agent}/session`.
    pub async fn logout(&self) -> Result<(), PlatformError> {
        let url = self.url(&["agents", &self.agent, "session"]);
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// `PUT /agents/{agent}/state`.
    pub async fn set_state(&self, state: &AgentState) -> Result<(), PlatformError> {
        let url = self.url(&["agents", &self.agent, "state"]);
        self.send(self.request(Method::PUT, url).json(state))
            .await
            .map(drop)
    }

    /// `POST /wrapups` with `Idempotency-Key: <key>`: 201 is [`Submitted::Created`], 200
    /// [`Submitted::Duplicate`] (any other 2xx counts as created).
    pub async fn submit(&self, wrapup: &Wrapup) -> Result<Submitted, PlatformError> {
        let url = self.url(&["wrapups"]);
        let request = self
            .request(Method::POST, url)
            .header("Idempotency-Key", &wrapup.key)
            .json(wrapup);
        match self.send(request).await? {
            StatusCode::OK => Ok(Submitted::Duplicate),
            _ => Ok(Submitted::Created),
        }
    }

    /// `GET /agents/{agent}/events`: the state changes the platform makes itself (e.g. a
    /// supervisor forcing a break), as Server-Sent Events. Optional in the contract: a platform
    /// without it answers 404 ([`PlatformError::Rejected`]). The stream has no overall timeout;
    /// reconnect after it ends or fails.
    pub async fn state_events(&self) -> Result<StateEvents, PlatformError> {
        let url = self.url(&["agents", &self.agent, "events"]);
        let mut request = self.client.get(url).header(ACCEPT, "text/event-stream");
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let response = request.send().await.map_err(unreachable)?;
        classify(response.status())?;
        Ok(StateEvents {
            response,
            buffer: Vec::new(),
            data: String::new(),
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused URLs that cannot be a base, the only case where this is `Err`.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url).timeout(self.timeout);
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// Sends and sorts the answer: 2xx is success, the rest an error by class.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<StatusCode, PlatformError> {
        let response = request.send().await.map_err(unreachable)?;
        classify(response.status())?;
        Ok(response.status())
    }
}

/// The agent states pushed by the platform ([`HttpPlatform::state_events`]).
#[derive(Debug)]
pub struct StateEvents {
    response: reqwest::Response,
    /// Bytes received and not yet split into lines.
    buffer: Vec<u8>,
    /// The `data:` lines of the event being received.
    data: String,
}

/// Longest event line accepted from the platform.
const MAX_EVENT_LINE: usize = 64 * 1024;

impl StateEvents {
    /// The next state the platform set; `Ok(None)` when the platform closed the stream. An
    /// event that is not a valid state is skipped (with a warning).
    pub async fn next(&mut self) -> Result<Option<AgentState>, PlatformError> {
        loop {
            while let Some(line) = self.take_line() {
                if let Some(state) = self.handle_line(&line) {
                    return Ok(Some(state));
                }
            }
            if self.buffer.len() > MAX_EVENT_LINE {
                return Err(PlatformError::Unavailable("event line too long".into()));
            }
            match self.response.chunk().await.map_err(unreachable)? {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The first complete line (without its `\n` or `\r\n`), if any.
    fn take_line(&mut self) -> Option<String> {
        let end = self.buffer.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    /// Collects `data:` lines; a blank line ends the event. Other fields and comments are
    /// ignored.
    fn handle_line(&mut self, line: &str) -> Option<AgentState> {
        if line.is_empty() {
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data);
            return match serde_json::from_str(&data) {
                Ok(state) => Some(state),
                Err(error) => {
                    tracing::warn!(%error, "skipping an agent state event that is not a state");
                    None
                }
            };
        }
        if let Some(value) = line.strip_prefix("data:") {
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
        None
    }
}

fn unreachable(error: reqwest::Error) -> PlatformError {
    // Without the URL: it carries nothing secret, but errors end up in the UI.
    PlatformError::Unavailable(error.without_url().to_string())
}

/// 2xx is success; other statuses are an error by class (docs/platform-api.yaml).
fn classify(status: StatusCode) -> Result<(), PlatformError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(PlatformError::Unauthorized {
            status: status.as_u16(),
        }),
        408 | 429 => Err(PlatformError::Unavailable(format!("HTTP {status}"))),
        400..=499 => Err(PlatformError::Rejected {
            status: status.as_u16(),
        }),
        _ => Err(PlatformError::Unavailable(format!("HTTP {status}"))),
    }
}

impl fmt::Debug for HttpPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPlatform")
            .field("base", &self.base.as_str())
            .field("agent", &self.agent)
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let platform = HttpPlatform::new(
            "http://127.0.0.1:9/base/",
            "agent01",
            Some("s3cr3t-token".into()),
            Duration::from_secs(1),
        )
        .expect("valid configuration");
        let printed = format!("{platform:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn paths_join_the_base_and_escape_the_agent() {
        let platform = HttpPlatform::new(
            "https://acd.example.com/v1/",
            "agent 01/x",
            None,
            Duration::from_secs(1),
        )
        .expect("valid configuration");
        let url = platform.url(&["agents", platform.agent(), "state"]);
        assert_eq!(
            url.as_str(),
            "https://acd.example.com/v1/agents/agent%2001%2Fx/state"
        );
        let bare = HttpPlatform::new("http://h:8080", "a", None, Duration::from_secs(1))
            .expect("valid configuration");
        assert_eq!(bare.url(&["wrapups"]).as_str(), "http://h:8080/wrapups");
    }

    #[test]
    fn refuses_unusable_base_urls() {
        for url in ["ftp://h/", "not a url", "mailto:x@y", "http://h/?q=1"] {
            let result = HttpPlatform::new(url, "a", None, Duration::from_secs(1));
            assert!(
                matches!(result, Err(PlatformError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }
}
