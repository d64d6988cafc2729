//! The HTTP lookup: one GET per attempt, bounded in time and size, retried on transient errors.

use std::fmt;
use std::time::Instant;

use reqwest::header::{ACCEPT, HeaderName, HeaderValue};
use reqwest::{Url, redirect};

use crate::card::Document;
use crate::template::{fill_template, parse_http_url};
use crate::{CallInfo, ContextConfig, ContextError, CustomerContext, MAX_BODY_BYTES, MAX_RETRIES};

/// Redirects are followed on the same host only (the auth header must not leave it), at most
/// this many times.
const MAX_REDIRECTS: usize = 3;

/// Looks customers up in the configured CRM. Cheap to share (`&self`), keeps connections alive
/// between calls.
pub struct ContextClient {
    config: ContextConfig,
    auth: Option<(HeaderName, HeaderValue)>,
    http: reqwest::Client,
}

impl ContextClient {
    /// Checks the configuration (template syntax and URL, auth header, timeout) and prepares
    /// the HTTP client. Does no I/O.
    pub fn new(config: ContextConfig) -> Result<Self, ContextError> {
        let sample = fill_template(&config.url_template, &CallInfo::default())?;
        if config.timeout.is_zero() {
            return Err(ContextError::Config(
                "the timeout must be above zero".into(),
            ));
        }
        let auth = match &config.auth_header {
            None => None,
            Some((name, value)) => {
                let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                    ContextError::Config(format!("invalid auth header name {name:?}"))
                })?;
                let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
                    ContextError::Config("invalid characters in the auth header value".into())
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        if auth.is_some() && sample.starts_with("http:") {
            tracing::warn!("the CRM auth header will be sent over plain http");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("homeagent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            .redirect(redirect::Policy::custom(same_host_redirect))
            .build()
            .map_err(|e| ContextError::Config(describe(&e)))?;
        Ok(Self { config, auth, http })
    }

    /// Looks up the customer of `call` and returns the card. Each attempt is bounded by the
    /// timeout; a timeout, a 5xx or a connection error is retried `retries` times, right away.
    pub async fn lookup(&self, call: &CallInfo) -> Result<CustomerContext, ContextError> {
        let url = parse_http_url(&fill_template(&self.config.url_template, call)?)?;
        let attempts = 1 + self.config.retries.min(MAX_RETRIES);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let outcome = tokio::time::timeout(self.config.timeout, self.fetch(url.clone()))
                .await
                .unwrap_or(Err(ContextError::Timeout));
            let elapsed_ms = started.elapsed().as_millis();
            match outcome {
                Ok(document) => {
                    tracing::debug!(attempt, elapsed_ms, "customer context found");
                    return Ok(document.card(&self.config.fields));
                }
                Err(error) if attempt < attempts && is_transient(&error) => {
                    tracing::debug!(attempt, elapsed_ms, %error, "customer lookup retried");
                    attempt += 1;
                }
                Err(error) => {
                    tracing::info!(attempt, elapsed_ms, %error, "customer lookup failed");
                    return Err(error);
                }
            }
        }
    }

    /// One GET: the status, then the body read chunk by chunk up to [`MAX_BODY_BYTES`].
    async fn fetch(&self, url: Url) -> Result<Document, ContextError> {
        let mut request = self.http.get(url).header(ACCEPT, "application/json");
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        tracing::debug!(status = status.as_u16(), "CRM answered");
        if !status.is_success() {
            return Err(ContextError::Status(status.as_u16()));
        }
        let too_big = || ContextError::Garbage(format!("more than {MAX_BODY_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Document::parse(&body)
    }
}

impl fmt::Debug for ContextClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Worth another attempt: the CRM may answer next time.
fn is_transient(error: &ContextError) -> bool {
    match error {
        ContextError::Timeout | ContextError::Unavailable(_) => true,
        ContextError::Status(status) => (500..600).contains(status),
        _ => false,
    }
}

fn transport_error(error: reqwest::Error) -> ContextError {
    if error.is_timeout() {
        ContextError::Timeout
    } else {
        ContextError::Unavailable(describe(&error))
    }
}

/// A reqwest error and its causes, without the URL (it holds call data).
fn describe(error: &reqwest::Error) -> String {
    let mut text = kind(error);
    let mut cause = std::error::Error::source(error);
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

/// The kind of a reqwest error, without its URL.
fn kind(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "cannot connect".into()
    } else if error.is_body() || error.is_decode() {
        "the body was cut".into()
    } else if error.is_redirect() {
        "redirect refused".into()
    } else if error.is_builder() {
        "cannot build the request".into()
    } else {
        "request failed".into()
    }
}

/// Follows a redirect on the same host (never from https down to http), a few times.
fn same_host_redirect(attempt: redirect::Attempt<'_>) -> redirect::Action {
    let Some(first) = attempt.previous().first() else {
        return attempt.stop();
    };
    let same_host = first.host_str() == attempt.url().host_str();
    let downgrade = first.scheme() == "https" && attempt.url().scheme() != "https";
    if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error("too many redirects")
    } else if same_host && !downgrade {
        attempt.follow()
    } else {
        attempt.stop()
    }
}
