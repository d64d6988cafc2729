//! REGISTER client (RFC 3261 §10), sans-IO.
//!
//! [`Registration`] builds REGISTER requests and interprets their responses; it owns no
//! transaction. The caller sends each returned request with
//! [`TransactionLayer::send_request`](crate::transaction::TransactionLayer::send_request),
//! feeds the final responses to [`Registration::handle_response`], and calls
//! [`Registration::register`] again at [`Registration::refresh_at`].
//! Randomness (branch, cnonce) comes in as `random: u64` arguments.

use std::time::{Duration, Instant};

use crate::auth::{Challenge, DigestAnswer};
use crate::message::{Method, NameAddr, Request, Response, Uri, Via, generate_branch};
use crate::transaction::Transport;

/// What a registration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Request-URI, e.g. `sip:example.com`.
    pub registrar: Uri,
    /// Address of record (From and To).
    pub aor: Uri,
    /// Our Contact.
    pub contact: Uri,
    /// Requested expiry, in seconds.
    pub expires: u32,
    pub username: String,
    pub password: String,
    /// Constant for the registration's lifetime (see [`crate::message::generate_call_id`]).
    pub call_id: String,
    pub from_tag: String,
    /// Via sent-by and transport.
    pub via_host: String,
    pub via_port: Option<u16>,
    pub transport: Transport,
    /// Refresh this long before expiry, or at 80 % of it, whichever is sooner.
    pub refresh_margin: Duration,
    /// RFC 5626 outbound over a connection (TCP/TLS/WS): this device's `+sip.instance`
    /// (`urn:uuid:…`), registered with `reg-id=1` and `Supported: outbound`, so the registrar
    /// keeps the flow and replaces, not adds, the binding after a reconnection.
    pub instance: Option<String>,
}

/// What [`Registration::handle_response`] asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationEvent {
    /// Send this REGISTER (with credentials, or a corrected expiry).
    Send(Request),
    /// Bound for `expires` seconds; call `register` again at `refresh_at`.
    Registered { expires: u32, refresh_at: Instant },
    /// The un-REGISTER succeeded.
    Unregistered,
    /// Final failure (bad credentials, 403, 404, timeout reported by the caller...).
    Failed { code: u16, reason: String },
}

/// One address-of-record binding.
#[derive(Debug, Clone)]
pub struct Registration {
    config: RegistrationConfig,
    cseq: u32,
    /// Expiry asked in the pending request (0 = un-REGISTER).
    pending_expires: u32,
    /// Challenges answered during the current attempt: (answer header, challenge, nc).
    credentials: Vec<(&'static str, Challenge, u32)>,
    refresh_at: Option<Instant>,
}

impl Registration {
    pub fn new(config: RegistrationConfig) -> Self {
        let expires = config.expires;
        Registration {
            config,
            cseq: 0,
            pending_expires: expires,
            credentials: Vec::new(),
            refresh_at: None,
        }
    }

    /// A REGISTER (initial or refresh). Starts a new attempt: challenges are answered
    /// afresh.
    /// The Contact we register.
    pub fn contact(&self) -> &Uri {
        &self.config.contact
    }

    /// Registers `contact` from the next request on (e.g. the public address learned from the
    /// registrar's `received`/`rport` behind a NAT).
    pub fn set_contact(&mut self, contact: Uri) {
        self.config.contact = contact;
    }

    pub fn register(&mut self, random: u64) -> Request {
        self.credentials.clear();
        self.pending_expires = self.config.expires;
        self.build(random)
    }

    /// The REGISTER removing our binding (Contact `expires=0`).
    pub fn unregister(&mut self, random: u64) -> Request {
        self.credentials.clear();
        self.pending_expires = 0;
        self.refresh_at = None;
        self.build(random)
    }

    /// When the binding should be refreshed, once registered.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// Interprets a response to the last request built. Provisional responses and
    /// responses to older requests give `None`.
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &Response,
        random: u64,
    ) -> Option<RegistrationEvent> {
        let cseq = response.headers.cseq()?;
        if cseq.method != Method::Register || cseq.seq != self.cseq || response.status < 200 {
            return None;
        }
        let failed = |r: &Response| RegistrationEvent::Failed {
            code: r.status,
            reason: r.reason.clone(),
        };
        match response.status {
            200..=299 if self.pending_expires == 0 => Some(RegistrationEvent::Unregistered),
            200..=299 => {
                let expires = self.granted_expires(response);
                if expires == 0 {
                    self.refresh_at = None;
                    return Some(RegistrationEvent::Failed {
                        code: response.status,
                        reason: "No binding granted".to_owned(),
                    });
                }
                let granted = Duration::from_secs(u64::from(expires));
                let early = granted.mul_f64(0.8);
                let margin = granted.saturating_sub(self.config.refresh_margin);
                let wait = if margin.is_zero() {
                    early
                } else {
                    early.min(margin)
                };
                let refresh_at = now + wait;
                self.refresh_at = Some(refresh_at);
                Some(RegistrationEvent::Registered {
                    expires,
                    refresh_at,
                })
            }
            401 | 407 => {
                let Some((challenge, header)) = Challenge::from_response(response) else {
                    return Some(failed(response));
                };
                let answered = self
                    .credentials
                    .iter()
                    .any(|(h, c, _)| *h == header && c.nonce == challenge.nonce);
                if answered && !challenge.stale {
                    return Some(failed(response));
                }
                self.credentials
                    .retain(|(h, c, _)| !(*h == header && c.realm == challenge.realm));
                self.credentials.push((header, challenge, 0));
                Some(RegistrationEvent::Send(self.build(random)))
            }
            423 => match response
                .headers
                .get("Min-Expires")
                .and_then(|v| v.trim().parse().ok())
            {
                Some(min) if min > self.pending_expires && self.pending_expires != 0 => {
                    self.config.expires = min;
                    self.pending_expires = min;
                    Some(RegistrationEvent::Send(self.build(random)))
                }
                _ => Some(failed(response)),
            },
            _ => {
                self.refresh_at = None;
                Some(failed(response))
            }
        }
    }

    /// The expiry the registrar granted to our Contact.
    fn granted_expires(&self, response: &Response) -> u32 {
        let ours = |c: &NameAddr| {
            c.uri.user == self.config.contact.user
                && c.uri.host.eq_ignore_ascii_case(&self.config.contact.host)
                && c.uri.port == self.config.contact.port
        };
        response
            .headers
            .contacts()
            .iter()
            .find(|c| ours(c))
            .and_then(|c| c.params.get("expires").and_then(|e| e.parse().ok()))
            .or_else(|| response.headers.expires())
            .unwrap_or(self.pending_expires)
    }

    fn build(&mut self, random: u64) -> Request {
        self.cseq += 1;
        let c = &self.config;
        let mut request = Request::new(Method::Register, c.registrar.clone());
        let via = Via::new(
            c.transport.as_str(),
            &c.via_host,
            c.via_port,
            &generate_branch(random),
        );
        // RFC 3581: ask for the source port back, so NATed bindings work.
        let mut via = via;
        via.params.set("rport", None);
        let h = &mut request.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        let mut from = NameAddr::new(c.aor.clone());
        from.set_tag(&c.from_tag);
        h.push("From", from.to_string());
        h.push("To", NameAddr::new(c.aor.clone()).to_string());
        h.push("Call-ID", c.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", self.cseq));
        let mut contact = NameAddr::new(c.contact.clone());
        contact
            .params
            .set("expires", Some(&self.pending_expires.to_string()));
        if let Some(instance) = &c.instance {
            contact
                .params
                .set("+sip.instance", Some(&format!("\"<{instance}>\"")));
            contact.params.set("reg-id", Some("1"));
            h.push("Supported", "outbound, path");
        }
        h.push("Contact", contact.to_string());
        h.push("Expires", self.pending_expires.to_string());
        let uri = c.registrar.to_string();
        let cnonce = format!("{:016x}", random.rotate_left(17) ^ 0x5bd1_e995);
        for (header, challenge, nc) in &mut self.credentials {
            *nc += 1;
            let answer = challenge.answer(&DigestAnswer {
                method: &Method::Register,
                uri: &uri,
                username: &c.username,
                password: &c.password,
                cnonce: &cnonce,
                nonce_count: *nc,
            });
            match answer {
                Ok(value) => h.push(header, value),
                Err(error) => tracing::debug!(%error, "cannot answer challenge"),
            }
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use md5::{Digest as _, Md5};

    use super::*;

    fn start() -> Instant {
        #[allow(clippy::disallowed_methods)] // Tests need one base instant.
        Instant::now()
    }

    fn config(password: &str) -> RegistrationConfig {
        RegistrationConfig {
            registrar: "sip:example.com".parse().unwrap(),
            aor: "sip:alice@example.com".parse().unwrap(),
            contact: "sip:alice@192.0.2.1:5060".parse().unwrap(),
            expires: 300,
            username: "alice".into(),
            password: password.into(),
            call_id: "reg-call".into(),
            from_tag: "ft".into(),
            via_host: "192.0.2.1".into(),
            via_port: Some(5060),
            transport: Transport::Udp,
            refresh_margin: Duration::from_secs(30),
            instance: None,
        }
    }

    fn hex_md5(s: &str) -> String {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Extracts a field of an Authorization value.
    fn field(value: &str, name: &str) -> Option<String> {
        let start = value.find(&format!(" {name}="))? + name.len() + 2;
        let rest = &value[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        Some(rest[..rest.find(['"', ',']).unwrap_or(rest.len())].to_owned())
    }

    /// A registrar in memory: challenges with nonces from `nonces`, checks digest answers
    /// with its own MD5 computation (qop=auth), grants `grant` seconds.
    struct Registrar {
        password: &'static str,
        nonces: Vec<&'static str>,
        stale_next: bool,
        grant: u32,
        seen: Vec<Request>,
        status_after_auth: u16,
    }

    impl Registrar {
        fn answer(&mut self, req: &Request) -> Response {
            self.seen.push(req.clone());
            let nonce = self.nonces.first().copied().unwrap_or("n0");
            let challenge = |nonce: &str, stale: bool| {
                let mut r = Response::from_request(req, 401, "", Some("reg"));
                r.headers.push(
                    "WWW-Authenticate",
                    format!(
                        "Digest realm=\"example.com\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5{}",
                        if stale { ", stale=true" } else { "" }
                    ),
                );
                r
            };
            let Some(auth) = req.headers.get("Authorization") else {
                return challenge(nonce, false);
            };
            let used_nonce = field(auth, "nonce").unwrap();
            let ha1 = hex_md5(&format!("alice:example.com:{}", self.password));
            let ha2 = hex_md5("REGISTER:sip:example.com");
            let expected = hex_md5(&format!(
                "{ha1}:{used_nonce}:{}:{}:auth:{ha2}",
                field(auth, "nc").unwrap(),
                field(auth, "cnonce").unwrap()
            ));
            if field(auth, "response").as_deref() != Some(expected.as_str()) {
                return challenge(nonce, false);
            }
            if used_nonce != nonce || self.stale_next {
                self.stale_next = false;
                if self.nonces.len() > 1 {
                    self.nonces.remove(0);
                }
                let fresh = self.nonces.first().copied().unwrap_or("n0");
                return challenge(fresh, true);
            }
            let mut ok = Response::from_request(req, self.status_after_auth, "", Some("reg"));
            let expires: u32 = req.headers.expires().unwrap();
            let granted = expires.min(self.grant);
            ok.headers.push(
                "Contact",
                format!("<sip:alice@192.0.2.1:5060>;expires={granted}"),
            );
            ok.headers
                .push("Contact", "<sip:alice@198.51.100.9>;expires=3600");
            ok
        }
    }

    fn registrar(password: &'static str) -> Registrar {
        Registrar {
            password,
            nonces: vec!["n1", "n2"],
            stale_next: false,
            grant: 120,
            seen: Vec::new(),
            status_after_auth: 200,
        }
    }

    /// Drives requests through the registrar until a non-Send event.
    fn drive(
        reg: &mut Registration,
        server: &mut Registrar,
        now: Instant,
        first: Request,
    ) -> RegistrationEvent {
        let mut request = first;
        for round in 0..10u64 {
            let response = server.answer(&request);
            match reg.handle_response(now, &response, round + 100) {
                Some(RegistrationEvent::Send(next)) => request = next,
                Some(other) => return other,
                None => panic!("no outcome"),
            }
        }
        panic!("no final outcome");
    }

    #[test]
    fn registers_with_digest_and_refreshes() {
        let t0 = start();
        let mut reg = Registration::new(config("secret"));
        let mut server = registrar("secret");
        let first = reg.register(1);
        let event = drive(&mut reg, &mut server, t0, first);
        // Granted 120 s: refresh at min(96 s, 120 - 30 = 90 s).
        assert_eq!(
            event,
            RegistrationEvent::Registered {
                expires: 120,
                refresh_at: t0 + Duration::from_secs(90)
            }
        );
        assert_eq!(reg.refresh_at(), Some(t0 + Duration::from_secs(90)));
        assert_eq!(server.seen.len(), 2);
        let [a, b] = &server.seen[..] else { panic!() };
        assert!(a.headers.get("Authorization").is_none());
        assert!(b.headers.get("Authorization").is_some());
        assert_eq!(a.headers.call_id(), b.headers.call_id());
        assert_eq!(
            a.headers.cseq().unwrap().seq + 1,
            b.headers.cseq().unwrap().seq
        );
        assert_ne!(
            a.headers.via().unwrap().branch(),
            b.headers.via().unwrap().branch()
        );
        assert_eq!(a.headers.contacts()[0].params.get("expires"), Some("300"));

        // Refresh: same Call-ID, CSeq keeps increasing.
        let again = reg.register(7);
        assert_eq!(again.headers.cseq().unwrap().seq, 3);
        assert_eq!(again.headers.call_id(), Some("reg-call"));
        let event = drive(&mut reg, &mut server, t0 + Duration::from_secs(90), again);
        assert!(matches!(
            event,
            RegistrationEvent::Registered { expires: 120, .. }
        ));

        // Un-REGISTER.
        let bye = reg.unregister(9);
        assert_eq!(bye.headers.contacts()[0].params.get("expires"), Some("0"));
        assert_eq!(bye.headers.expires(), Some(0));
        server.grant = 0;
        let event = drive(&mut reg, &mut server, t0, bye);
        assert_eq!(event, RegistrationEvent::Unregistered);
        assert_eq!(reg.refresh_at(), None);
    }

    #[test]
    fn outbound_instance_and_reg_id_are_in_every_register() {
        let mut with = config("secret");
        with.transport = Transport::Tls;
        with.instance = Some("urn:uuid:00000000-0000-4000-8000-000000000001".into());
        let mut reg = Registration::new(with);
        for request in [reg.register(1), reg.unregister(2)] {
            let contact = &request.headers.contacts()[0];
            assert_eq!(
                contact.params.get("+sip.instance"),
                Some("\"<urn:uuid:00000000-0000-4000-8000-000000000001>\"")
            );
            assert_eq!(contact.params.get("reg-id"), Some("1"));
            assert_eq!(request.headers.get("Supported"), Some("outbound, path"));
            // What goes on the wire parses back the same.
            let text = request.to_string();
            assert!(text.contains("+sip.instance=\"<urn:uuid:"), "{text}");
        }
        let mut reg = Registration::new(config("secret"));
        let plain = reg.register(1);
        assert_eq!(plain.headers.contacts()[0].params.get("reg-id"), None);
        assert_eq!(plain.headers.get("Supported"), None);
    }

    #[test]
    fn short_grant_refreshes_at_80_percent() {
        let t0 = start();
        let mut reg = Registration::new(config("secret"));
        let mut server = registrar("secret");
        server.grant = 20;
        let first = reg.register(1);
        let event = drive(&mut reg, &mut server, t0, first);
        assert_eq!(
            event,
            RegistrationEvent::Registered {
                expires: 20,
                refresh_at: t0 + Duration::from_secs(16)
            }
        );
    }

    #[test]
    fn wrong_password_fails_after_one_answer_per_nonce() {
        let t0 = start();
        let mut reg = Registration::new(config("wrong"));
        let mut server = registrar("secret");
        server.nonces = vec!["only"];
        let first = reg.register(1);
        let event = drive(&mut reg, &mut server, t0, first);
        assert!(matches!(event, RegistrationEvent::Failed { code: 401, .. }));
        assert_eq!(server.seen.len(), 2, "answered exactly once");
    }

    #[test]
    fn stale_nonce_is_answered_again() {
        let t0 = start();
        let mut reg = Registration::new(config("secret"));
        let mut server = registrar("secret");
        server.stale_next = true;
        let first = reg.register(1);
        let event = drive(&mut reg, &mut server, t0, first);
        assert!(matches!(event, RegistrationEvent::Registered { .. }));
        assert_eq!(server.seen.len(), 3);
    }

    #[test]
    fn other_responses() {
        let t0 = start();
        let mut reg = Registration::new(config("secret"));
        let req = reg.register(1);
        let trying = Response::from_request(&req, 100, "", None);
        assert_eq!(reg.handle_response(t0, &trying, 2), None);
        let forbidden = Response::from_request(&req, 403, "Forbidden", Some("x"));
        assert_eq!(
            reg.handle_response(t0, &forbidden, 2),
            Some(RegistrationEvent::Failed {
                code: 403,
                reason: "Forbidden".into()
            })
        );
        // 423 with Min-Expires: retried with the larger expiry.
        let req = reg.register(3);
        let mut brief = Response::from_request(&req, 423, "", Some("x"));
        brief.headers.push("Min-Expires", "900");
        let Some(RegistrationEvent::Send(retry)) = reg.handle_response(t0, &brief, 4) else {
            panic!("expected a retry");
        };
        assert_eq!(retry.headers.expires(), Some(900));
        // A response to an older request is ignored.
        assert_eq!(reg.handle_response(t0, &brief, 5), None);
        // 401 without a usable challenge fails.
        let unauthorized = Response::from_request(&retry, 401, "", Some("x"));
        assert!(matches!(
            reg.handle_response(t0, &unauthorized, 6),
            Some(RegistrationEvent::Failed { code: 401, .. })
        ));
    }

    #[test]
    fn proxy_challenge_uses_proxy_authorization() {
        let t0 = start();
        let mut reg = Registration::new(config("secret"));
        let req = reg.register(1);
        let mut challenge = Response::from_request(&req, 407, "", Some("x"));
        challenge
            .headers
            .push("Proxy-Authenticate", "Digest realm=\"proxy\", nonce=\"p1\"");
        let Some(RegistrationEvent::Send(next)) = reg.handle_response(t0, &challenge, 2) else {
            panic!("expected an answer");
        };
        let value = next.headers.get("Proxy-Authorization").unwrap();
        assert_eq!(field(value, "realm").as_deref(), Some("proxy"));
        assert!(next.headers.get("Authorization").is_none());
        // No qop offered: RFC 2069 answer, computed independently here.
        let ha1 = hex_md5("alice:proxy:secret");
        let ha2 = hex_md5("REGISTER:sip:example.com");
        assert_eq!(
            field(value, "response"),
            Some(hex_md5(&format!("{ha1}:p1:{ha2}")))
        );
    }
}
