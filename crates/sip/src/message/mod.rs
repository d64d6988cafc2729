//! SIP message model, parser and printer (RFC 3261 §7, §20, §25).

mod header;
mod params;
mod parse;
pub(crate) mod text;
mod uri;

use std::fmt;

pub use header::{BRANCH_MAGIC_COOKIE, CSeq, Header, Headers, NameAddr, Via, canonical_name};
pub use params::{Param, Params};
pub use parse::{MAX_BODY_LEN, MAX_HEAD_LEN, ParseError, ParseErrorKind, parse_stream};
pub use uri::{Scheme, Uri, UriError};

/// A request method. Known methods have their own variant; names are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl From<&str> for Method {
    fn from(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP request. The body is opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// The wire form; `Content-Length` is always written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("{} {} SIP/2.0", self.method, self.uri);
        write_message(&start, &self.headers, &self.body)
    }
}

impl Response {
    /// A response to `request` copying Via, From, To, Call-ID and CSeq (and Record-Route
    /// for 101..=299). `to_tag` is added to To when it has no tag. An empty `reason` is
    /// replaced by the default phrase.
    pub fn from_request(
        request: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        response_from_headers(&request.headers, status, reason, to_tag)
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The wire form; `Content-Length` is always written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("SIP/2.0 {} {}", self.status, self.reason);
        write_message(&start, &self.headers, &self.body)
    }
}

pub(crate) fn response_from_headers(
    headers: &Headers,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Response {
    let mut out = Headers::new();
    let mut copy = |name: &str| {
        for v in headers.get_all(name) {
            out.push(name, v);
        }
    };
    copy("Via");
    if (101..300).contains(&status) {
        copy("Record-Route");
    }
    copy("From");
    match (headers.to(), to_tag) {
        (Some(mut to), Some(tag)) if to.tag().is_none() => {
            to.set_tag(tag);
            out.push("To", to.to_string());
        }
        _ => {
            if let Some(to) = headers.get("To") {
                out.push("To", to);
            }
        }
    }
    for name in ["Call-ID", "CSeq"] {
        if let Some(v) = headers.get(name) {
            out.push(name, v);
        }
    }
    let reason = if reason.is_empty() {
        reason_phrase(status)
    } else {
        reason
    };
    Response {
        status,
        reason: reason.to_owned(),
        headers: out,
        body: Vec::new(),
    }
}

impl Message {
    /// Parses one datagram (UDP). Without Content-Length the body is the rest of the
    /// datagram; bytes beyond Content-Length are discarded.
    pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
        parse::parse_datagram(datagram)
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Message {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Message {
        Message::Response(r)
    }
}

fn write_message(start: &str, headers: &Headers, body: &[u8]) -> Vec<u8> {
    // CR and LF inside a line would break the framing: they are written as spaces.
    fn push_line_text(out: &mut String, s: &str) {
        out.extend(
            s.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
    }
    let mut out = String::with_capacity(512);
    push_line_text(&mut out, start);
    out.push_str("\r\n");
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        push_line_text(&mut out, &h.name);
        out.push_str(": ");
        push_line_text(&mut out, &h.value);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Prints the wire form; a non-UTF-8 body is shown lossily.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Prints the wire form; a non-UTF-8 body is shown lossily.
impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Request(r) => r.fmt(f),
            Message::Response(r) => r.fmt(f),
        }
    }
}

/// A Via branch: the magic cookie followed by `random` in hex.
pub fn generate_branch(random: u64) -> String {
    format!("{BRANCH_MAGIC_COOKIE}{random:016x}")
}

/// A From/To tag from a caller-provided random value.
pub fn generate_tag(random: u64) -> String {
    format!("{random:016x}")
}

/// A Call-ID from caller-provided random values.
pub fn generate_call_id(random: [u64; 2]) -> String {
    format!("{:016x}{:016x}", random[0], random[1])
}

/// The default reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests;
