//! Parser for datagrams and stream framing.

use std::borrow::Cow;

use super::header::{Headers, canonical_name};
use super::text::is_token;
use super::{Message, Method, Request, Response, Uri, response_from_headers};

/// Largest accepted body (Content-Length), in bytes.
pub const MAX_BODY_LEN: usize = 1 << 20;
/// Largest accepted start line + headers, in bytes.
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// Why a message was rejected. The `Display` text is fit for a 400 reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    #[error("Empty message")]
    Empty,
    #[error("Header not UTF-8")]
    NotUtf8,
    #[error("Missing empty line after headers")]
    NoHeaderEnd,
    #[error("Headers too large")]
    HeadTooLarge,
    #[error("Malformed start line")]
    StartLine,
    #[error("Malformed Request-URI")]
    RequestUri,
    #[error("Version Not Supported")]
    Version,
    #[error("Malformed header line")]
    HeaderLine,
    #[error("Missing {0} header")]
    MissingHeader(&'static str),
    #[error("Malformed {0} header")]
    InvalidHeader(&'static str),
    #[error("CSeq method does not match request method")]
    CSeqMismatch,
    #[error("Invalid Content-Length")]
    InvalidContentLength,
    #[error("Missing Content-Length on a stream")]
    MissingContentLength,
    #[error("Body too large")]
    BodyTooLarge,
    #[error("Body shorter than Content-Length")]
    BodyTruncated,
}

/// A rejected message: why, and for a request whose headers could be read, enough to
/// answer it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    request_headers: Option<Box<Headers>>,
}

impl ParseError {
    fn new(kind: ParseErrorKind) -> ParseError {
        ParseError {
            kind,
            request_headers: None,
        }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The status code to answer with: 505 for a bad version, else 400.
    pub fn status(&self) -> u16 {
        match self.kind {
            ParseErrorKind::Version => 505,
            _ => 400,
        }
    }

    /// True when the rejected message was a request (its start line said so).
    pub fn is_request(&self) -> bool {
        self.request_headers.is_some()
    }

    /// A `400 Bad Request` (or `505`) for a rejected request whose Via, From, To, Call-ID
    /// and CSeq could be read; the reason phrase says why. The To tag, when added, is
    /// derived from the request so that retransmissions get the same one.
    pub fn bad_request_response(&self) -> Option<Response> {
        let headers = self.request_headers.as_deref()?;
        headers.via()?;
        let from = headers.from()?;
        headers.to()?;
        let call_id = headers.call_id()?;
        let cseq = headers.cseq()?;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let seed = format!("{call_id}/{}/{}", from.tag().unwrap_or(""), cseq.seq);
        for b in seed.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let tag = super::generate_tag(hash);
        Some(response_from_headers(
            headers,
            self.status(),
            &self.kind.to_string(),
            Some(&tag),
        ))
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> ParseError {
        ParseError::new(kind)
    }
}

pub(crate) fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
    let buf = buf.get(leading_crlf(buf)..).unwrap_or_default();
    if buf.is_empty() {
        return Err(ParseErrorKind::Empty.into());
    }
    let (head_end, body_start) = find_head_end(buf).ok_or(ParseErrorKind::NoHeaderEnd)?;
    if head_end > MAX_HEAD_LEN {
        return Err(ParseErrorKind::HeadTooLarge.into());
    }
    let head = parse_head(buf.get(..head_end).unwrap_or_default())?;
    head.check()?;
    let rest = buf.get(body_start..).unwrap_or_default();
    let body = match head.content_length {
        Ok(Some(len)) => rest
            .get(..len)
            .ok_or_else(|| head.fail(ParseErrorKind::BodyTruncated))?,
        _ => rest,
    };
    if body.len() > MAX_BODY_LEN {
        return Err(head.fail(ParseErrorKind::BodyTooLarge));
    }
    Ok(head.into_message(body.to_vec()))
}

/// Frames one message from a stream (TCP/TLS). Leading CRLF keep-alives are skipped.
/// Returns the message and the number of bytes consumed, `Ok(None)` when more bytes are
/// needed, or an error (the stream cannot be resynchronised: close the connection).
pub fn parse_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, ParseError> {
    let skip = leading_crlf(buf);
    let rest = buf.get(skip..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(None);
    }
    let Some((head_end, body_start)) = find_head_end(rest) else {
        if rest.len() > MAX_HEAD_LEN {
            return Err(ParseErrorKind::HeadTooLarge.into());
        }
        return Ok(None);
    };
    if head_end > MAX_HEAD_LEN {
        return Err(ParseErrorKind::HeadTooLarge.into());
    }
    let head = parse_head(rest.get(..head_end).unwrap_or_default())?;
    head.check()?;
    let len = match head.content_length {
        Ok(Some(len)) => len,
        _ => return Err(head.fail(ParseErrorKind::MissingContentLength)),
    };
    let Some(body) = rest.get(body_start..body_start + len) else {
        return Ok(None);
    };
    let body = body.to_vec();
    Ok(Some((head.into_message(body), skip + body_start + len)))
}

fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Finds the empty line: returns (end of the last header line, start of the body).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(offset) = buf.get(from..)?.iter().position(|&b| b == b'\n') {
        let i = from + offset;
        let next = buf.get(i + 1..).unwrap_or_default();
        if next.starts_with(b"\r\n") {
            return Some((i, i + 3));
        }
        if next.starts_with(b"\n") {
            return Some((i, i + 2));
        }
        from = i + 1;
    }
    None
}

enum StartLine {
    Request { method: Method, uri: Option<Uri> },
    Response { status: u16, reason: String },
}

struct Head {
    start: StartLine,
    headers: Headers,
    /// `Ok(None)` when absent.
    content_length: Result<Option<usize>, ParseErrorKind>,
    /// First problem found after the start line was recognised.
    deferred: Option<ParseErrorKind>,
}

fn parse_head(bytes: &[u8]) -> Result<Head, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let mut deferred = matches!(text, Cow::Owned(_)).then_some(ParseErrorKind::NotUtf8);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (start, start_error) = parse_start_line(lines.next().unwrap_or(""))?;
    deferred = deferred.or(start_error);

    let mut logical: Vec<String> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match logical.last_mut() {
                Some(prev) => {
                    prev.push(' ');
                    prev.push_str(line.trim());
                }
                None => deferred = deferred.or(Some(ParseErrorKind::HeaderLine)),
            }
        } else {
            logical.push(line.to_owned());
        }
    }

    let mut headers = Headers::new();
    let mut content_length = Ok(None);
    for line in &logical {
        if line.contains('\r') {
            deferred = deferred.or(Some(ParseErrorKind::HeaderLine));
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            deferred = deferred.or(Some(ParseErrorKind::HeaderLine));
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            deferred = deferred.or(Some(ParseErrorKind::HeaderLine));
            continue;
        }
        let value = value.trim();
        if canonical_name(name) == "Content-Length" {
            content_length = match (content_length, parse_content_length(value)) {
                (Ok(None), new) => new.map(Some),
                (Ok(Some(a)), Ok(b)) if a == b => Ok(Some(a)),
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                (Ok(Some(_)), Ok(_)) => Err(ParseErrorKind::InvalidContentLength),
            };
        } else {
            headers.push_parsed(name, value);
        }
    }
    Ok(Head {
        start,
        headers,
        content_length,
        deferred,
    })
}

fn parse_content_length(value: &str) -> Result<usize, ParseErrorKind> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseErrorKind::InvalidContentLength);
    }
    match value.parse::<usize>() {
        Ok(len) if len <= MAX_BODY_LEN => Ok(len),
        _ => Err(ParseErrorKind::BodyTooLarge),
    }
}

fn parse_start_line(line: &str) -> Result<(StartLine, Option<ParseErrorKind>), ParseError> {
    if line.contains('\r') {
        return Err(ParseErrorKind::StartLine.into());
    }
    let is_response = line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if is_response {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseErrorKind::Version.into());
        }
        let code = parts.next().unwrap_or("");
        let status = match code.parse::<u16>() {
            Ok(s)
                if code.len() == 3
                    && (100..700).contains(&s)
                    && code.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s
            }
            _ => return Err(ParseErrorKind::StartLine.into()),
        };
        let reason = parts.next().unwrap_or("").to_owned();
        return Ok((StartLine::Response { status, reason }, None));
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(ParseErrorKind::StartLine.into());
    };
    if !is_token(method) {
        return Err(ParseErrorKind::StartLine.into());
    }
    let uri = uri.parse::<Uri>().ok();
    let error = if !version.eq_ignore_ascii_case("SIP/2.0") {
        Some(ParseErrorKind::Version)
    } else if uri.is_none() {
        Some(ParseErrorKind::RequestUri)
    } else {
        None
    };
    let start = StartLine::Request {
        method: Method::from(*method),
        uri,
    };
    Ok((start, error))
}

impl Head {
    fn fail(&self, kind: ParseErrorKind) -> ParseError {
        let request_headers = match self.start {
            StartLine::Request { .. } => Some(Box::new(self.headers.clone())),
            StartLine::Response { .. } => None,
        };
        ParseError {
            kind,
            request_headers,
        }
    }

    fn check(&self) -> Result<(), ParseError> {
        self.validate().map_err(|kind| self.fail(kind))
    }

    fn validate(&self) -> Result<(), ParseErrorKind> {
        use ParseErrorKind::{InvalidHeader, MissingHeader};
        if let Some(e) = &self.deferred {
            return Err(e.clone());
        }
        if let Err(e) = &self.content_length {
            return Err(e.clone());
        }
        let h = &self.headers;
        let require = |name: &'static str, ok: bool| match (h.get(name), ok) {
            (None, _) => Err(MissingHeader(name)),
            (Some(_), false) => Err(InvalidHeader(name)),
            (Some(_), true) => Ok(()),
        };
        require("Via", h.via().is_some())?;
        require("From", h.from().is_some())?;
        require("To", h.to().is_some())?;
        require("Call-ID", h.call_id().is_some())?;
        let cseq = h.cseq();
        require("CSeq", cseq.is_some())?;
        if h.get("Max-Forwards").is_some() && h.max_forwards().is_none() {
            return Err(InvalidHeader("Max-Forwards"));
        }
        if let (StartLine::Request { method, .. }, Some(cseq)) = (&self.start, cseq) {
            if *method != cseq.method {
                return Err(ParseErrorKind::CSeqMismatch);
            }
        }
        Ok(())
    }

    /// Builds the message; only called after `check` succeeded.
    fn into_message(self, body: Vec<u8>) -> Message {
        match self.start {
            StartLine::Request { method, uri } => Message::Request(Request {
                method,
                // `check` rejects a request whose URI did not parse (deferred error).
                uri: uri.unwrap_or_else(|| Uri::sip(None, "invalid", None)),
                headers: self.headers,
                body,
            }),
            StartLine::Response { status, reason } => Message::Response(Response {
                status,
                reason,
                headers: self.headers,
                body,
            }),
        }
    }
}
