//! Customer context (screen-pop): when a call arrives, look the customer up in the CRM that IT
//! configured and turn the answer into the rows of a customer card.
//!
//! IT configures a [`ContextConfig`]: a URL template filled from the call ([`fill_template`]:
//! `{from}`, `{to}`, `{header:NAME}`), an optional authentication header, a timeout with one
//! retry, and a mapping from JSON paths to card labels. [`ContextClient::lookup`] does one GET
//! and returns a [`CustomerContext`]: ordered `(label, text)` pairs.
//!
//! Customer data is treated as hostile and private:
//! - values are plain text (never HTML): control and bidi-override characters are removed,
//!   each value is capped at [`MAX_VALUE_CHARS`], the body at [`MAX_BODY_BYTES`] (read
//!   incrementally, abandoned beyond);
//! - nothing is written to disk, and nothing from the call or the answer is logged: logs carry
//!   the status, the attempt and the timing only. `Debug` of [`CustomerContext`] and
//!   [`CallInfo`] redacts values, `Debug` of [`ContextConfig`] redacts the auth secret.
#![forbid(unsafe_code)]

mod card;
mod client;
mod template;

use std::fmt;
use std::time::Duration;

pub use client::ContextClient;
pub use template::fill_template;

/// The largest CRM answer accepted; a longer body is abandoned as [`ContextError::Garbage`].
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Each value of the card is cut to this many characters (an ellipsis marks the cut).
pub const MAX_VALUE_CHARS: usize = 500;
/// At most this many retries are made, whatever the configuration says.
pub const MAX_RETRIES: u32 = 3;

/// The lookup configured by IT.
#[derive(Clone, PartialEq, Eq)]
pub struct ContextConfig {
    /// For example `https://crm.example.com/api/customers?phone={from}&id={header:X-Customer-Id}`.
    pub url_template: String,
    /// The bound of one attempt: connecting, the answer and its whole body. Default 1.5 s.
    pub timeout: Duration,
    /// Further attempts after a timeout, a 5xx or a connection error (never after a 4xx or
    /// an unusable answer). Default 1, at most [`MAX_RETRIES`].
    pub retries: u32,
    /// A header sent with every lookup, `(name, value)`; the value is a secret from the OS
    /// keychain and is never logged nor shown by `Debug`.
    pub auth_header: Option<(String, String)>,
    /// The rows of the card, in order. Empty: every top-level string, number and boolean of
    /// the answer, in document order, labelled with its key.
    pub fields: Vec<FieldMapping>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            url_template: String::new(),
            timeout: Duration::from_millis(1500),
            retries: 1,
            auth_header: None,
            fields: Vec::new(),
        }
    }
}

impl fmt::Debug for ContextConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextConfig")
            .field("url_template", &self.url_template)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field(
                "auth_header",
                &self
                    .auth_header
                    .as_ref()
                    .map(|(name, _)| (name, "<redacted>")),
            )
            .field("fields", &self.fields)
            .finish()
    }
}

/// One row of the card: a label and where its value is in the JSON answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    /// Shown to the agent, for example `Customer`.
    pub label: String,
    /// A dotted path (`customer.name`, `orders.0.id`) or a JSON Pointer (`/customer/name`).
    /// A missing or `null` value leaves the row out.
    pub path: String,
}

impl FieldMapping {
    /// A row labelled `label` showing the value at `path`.
    pub fn new(label: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            path: path.into(),
        }
    }
}

/// What the template is filled from: the incoming INVITE.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallInfo {
    /// The caller: the user part of the From URI (usually a number).
    pub from: String,
    /// The called number or user.
    pub to: String,
    /// Every header of the INVITE, `(name, value)`, as received.
    pub headers: Vec<(String, String)>,
}

impl CallInfo {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }
}

impl fmt::Debug for CallInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("CallInfo")
            .field("from", &"<redacted>")
            .field("to", &"<redacted>")
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

/// The customer card: `(label, value)` rows in order, values as plain text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomerContext {
    /// The rows, in the order of the mapping (or of the document).
    pub fields: Vec<(String, String)>,
}

impl CustomerContext {
    /// The value of the first row labelled `label`.
    pub fn value(&self, label: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == label)
            .map(|(_, value)| value.as_str())
    }
}

impl fmt::Debug for CustomerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|(label, _)| (label, "<redacted>")))
            .finish()
    }
}

/// Why a lookup gave no card. Messages never contain customer data nor the filled URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The URL template is wrong.
    #[error("URL template: {0}")]
    Template(#[from] TemplateError),
    /// Another part of the configuration is wrong (the auth header, the timeout).
    #[error("configuration: {0}")]
    Config(String),
    /// The CRM did not answer within the timeout (after the retries).
    #[error("the CRM did not answer in time")]
    Timeout,
    /// The CRM could not be reached (connection refused or reset, DNS, TLS).
    #[error("the CRM is unavailable: {0}")]
    Unavailable(String),
    /// The CRM answered with an HTTP error (or a redirect that was not followed).
    #[error("the CRM answered HTTP {0}")]
    Status(u16),
    /// The answer is not usable: not UTF-8, not JSON, not an object, or too big.
    #[error("unusable CRM answer: {0}")]
    Garbage(String),
}

/// What is wrong with a URL template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A placeholder other than `{from}`, `{to}`, `{header:NAME}`.
    #[error("unknown placeholder {{{0}}}")]
    UnknownPlaceholder(String),
    /// A `{` without its `}` or a `}` without its `{`, at this byte offset.
    #[error("unbalanced brace at byte {0}")]
    UnbalancedBrace(usize),
    /// The filled template is not an absolute `http://` or `https://` URL with a host.
    #[error("not an http(s) URL: {0}")]
    NotHttpUrl(String),
}
