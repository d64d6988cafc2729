//! The agent's presence (RFC 3903 PUBLISH of an RFC 3863 PIDF document): `open` when ready,
//! `closed` otherwise, with the state as a note; refreshed before it expires. Published only
//! where the registrar takes it: a 405/489/501 (or any other refusal) stops it for good.

use std::time::{Duration, Instant};

use homeagent_sip::auth;
use homeagent_sip::message::{Method, NameAddr, Request, Response, Uri};
use homeagent_sip::transaction::{Peer, TransactionId};

use crate::agent::AgentState;
use crate::config::Account;
use crate::phone::Phone;

/// Lifetime asked for each publication, seconds.
const EXPIRES: u32 = 600;
/// Refresh this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Never refresh sooner than this (a server answering `Expires: 0` must not cause a loop).
const MIN_REFRESH: Duration = Duration::from_secs(30);
const MAX_AUTH_ATTEMPTS: u32 = 2;

#[derive(Debug)]
pub(crate) struct Presence {
    proxy: Peer,
    aor: Uri,
    username: String,
    password: String,
    from_tag: String,
    call_id: String,
    cseq: u32,
    /// The platform's handle on our publication (SIP-ETag), for refreshes and changes.
    etag: Option<String>,
    transaction: Option<TransactionId>,
    /// The request in flight (resent with credentials when challenged).
    sent: Option<Request>,
    /// The document to publish once the one in flight is answered.
    wanted: Option<String>,
    /// The document last published.
    published: Option<String>,
    refresh_at: Option<Instant>,
    auth_attempts: u32,
    /// The registrar does not take PUBLISH: stop.
    refused: bool,
}

impl Presence {
    pub(crate) fn new(phone: &mut Phone, account: &Account) -> Self {
        Self {
            proxy: account.proxy,
            aor: Uri::sip(Some(&account.user), &account.domain, None),
            username: account
                .auth_user
                .clone()
                .unwrap_or_else(|| account.user.clone()),
            password: account.password.clone(),
            from_tag: phone.rng.token(),
            call_id: phone.new_call_id_token(),
            cseq: 0,
            etag: None,
            transaction: None,
            sent: None,
            wanted: None,
            published: None,
            refresh_at: None,
            auth_attempts: 0,
            refused: false,
        }
    }

    /// Publishes `state` (after the request in flight, if any).
    pub(crate) fn publish(&mut self, phone: &mut Phone, state: &AgentState) {
        if self.refused {
            return;
        }
        let document = pidf(&self.aor, state);
        if self.published.as_ref() == Some(&document) && self.transaction.is_none() {
            return;
        }
        self.wanted = Some(document);
        if self.transaction.is_none() {
            self.send_wanted(phone);
        }
    }

    pub(crate) fn owns(&self, id: TransactionId) -> bool {
        self.transaction == Some(id)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.refresh_at.filter(|_| self.transaction.is_none())
    }

    pub(crate) fn handle_timeout(&mut self, phone: &mut Phone, now: Instant) {
        if self.transaction.is_none() && self.refresh_at.is_some_and(|at| at <= now) {
            self.refresh_at = None;
            // A refresh carries no body, only SIP-If-Match (RFC 3903 §4.2).
            let request = self.request(phone, None);
            self.send(phone, request);
        }
    }

    pub(crate) fn handle_response(&mut self, phone: &mut Phone, response: &Response) {
        if response.status < 200 {
            return;
        }
        self.transaction = None;
        match response.status {
            200..=299 => {
                self.auth_attempts = 0;
                if let Some(etag) = response.headers.get("SIP-ETag") {
                    self.etag = Some(etag.trim().to_owned());
                }
                let expires = response
                    .headers
                    .get("Expires")
                    .and_then(|e| e.trim().parse::<u64>().ok())
                    .unwrap_or(u64::from(EXPIRES));
                let lifetime = Duration::from_secs(expires);
                let refresh = lifetime
                    .saturating_sub(REFRESH_MARGIN)
                    .max(lifetime / 2)
                    .max(MIN_REFRESH);
                self.refresh_at = Some(phone.now + refresh);
                if let Some(body) = self.sent.take().map(|r| r.body).filter(|b| !b.is_empty()) {
                    self.published = String::from_utf8(body).ok();
                }
                if self.wanted.is_some() {
                    self.send_wanted(phone);
                }
            }
            401 | 407 => self.answer_challenge(phone, response),
            // Our ETag is unknown there (expired, restarted): publish afresh.
            412 => {
                self.etag = None;
                self.wanted = self.wanted.take().or_else(|| self.published.take());
                self.send_wanted(phone);
            }
            status => {
                tracing::info!(
                    status,
                    "presence not published: the registrar refuses PUBLISH"
                );
                self.refused = true;
                self.sent = None;
                self.refresh_at = None;
            }
        }
    }

    pub(crate) fn handle_transaction_timeout(&mut self) {
        self.transaction = None;
        self.sent = None;
    }

    fn send_wanted(&mut self, phone: &mut Phone) {
        let Some(document) = self.wanted.take() else {
            return;
        };
        let request = self.request(phone, Some(document));
        self.send(phone, request);
    }

    fn send(&mut self, phone: &mut Phone, request: Request) {
        self.sent = Some(request.clone());
        self.transaction = Some(phone.send_request(self.proxy, request));
    }

    fn request(&mut self, phone: &mut Phone, document: Option<String>) -> Request {
        self.cseq += 1;
        let mut from = NameAddr::new(self.aor.clone());
        from.set_tag(&self.from_tag);
        let mut request = phone.new_request(
            Method::Publish,
            self.aor.clone(),
            from,
            NameAddr::new(self.aor.clone()),
            &self.call_id.clone(),
            self.cseq,
            self.proxy.transport,
        );
        request.headers.push("Event", "presence");
        request.headers.push("Expires", EXPIRES.to_string());
        if let Some(etag) = &self.etag {
            request.headers.push("SIP-If-Match", etag.clone());
        }
        if let Some(document) = document {
            request.headers.push("Content-Type", "application/pidf+xml");
            request.body = document.into_bytes();
        }
        request
    }

    fn answer_challenge(&mut self, phone: &mut Phone, response: &Response) {
        self.auth_attempts += 1;
        let Some(mut request) = self.sent.take() else {
            return;
        };
        let challenge = auth::Challenge::from_response(response)
            .filter(|_| self.auth_attempts <= MAX_AUTH_ATTEMPTS);
        let cnonce = phone.rng.token();
        let uri = request.uri.to_string();
        let answer = challenge.and_then(|(challenge, header)| {
            let answer = auth::DigestAnswer {
                method: &Method::Publish,
                uri: &uri,
                username: &self.username,
                password: &self.password,
                cnonce: &cnonce,
                nonce_count: 1,
            };
            challenge.answer(&answer).ok().map(|value| (header, value))
        });
        let Some((header, value)) = answer else {
            tracing::info!("presence not published: authentication failed");
            self.refused = true;
            return;
        };
        request.headers.remove("Authorization");
        request.headers.remove("Proxy-Authorization");
        request.headers.push(header, value);
        self.cseq += 1;
        request
            .headers
            .set("CSeq", format!("{} PUBLISH", self.cseq));
        let via = phone.new_via(self.proxy.transport);
        request.headers.set_via(&via);
        self.send(phone, request);
    }
}

/// The RFC 3863 document: `open` when ready, `closed` otherwise; the state (and reason) as
/// the note.
fn pidf(entity: &Uri, state: &AgentState) -> String {
    let basic = if *state == AgentState::Ready {
        "open"
    } else {
        "closed"
    };
    let note = match state {
        AgentState::NotReady { reason } if !reason.is_empty() => {
            format!("{} ({reason})", state.as_str())
        }
        other => other.as_str().to_owned(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{}\">\n\
         <tuple id=\"homeagent\"><status><basic>{basic}</basic></status>\
         <note>{}</note></tuple>\n</presence>\n",
        xml_escape(&entity.to_string()),
        xml_escape(&note)
    )
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c if c.is_control() => " ".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_says_open_when_ready_and_escapes_the_reason() {
        let aor: Uri = "sip:agent01@pbx.example".parse().unwrap();
        let ready = pidf(&aor, &AgentState::Ready);
        assert!(ready.contains("<basic>open</basic>"), "{ready}");
        assert!(
            ready.contains("entity=\"sip:agent01@pbx.example\""),
            "{ready}"
        );
        let paused = pidf(
            &aor,
            &AgentState::NotReady {
                reason: "<pause> & café".into(),
            },
        );
        assert!(paused.contains("<basic>closed</basic>"), "{paused}");
        assert!(
            paused.contains("<note>not_ready (&lt;pause&gt; &amp; café)</note>"),
            "{paused}"
        );
    }
}
