//! Registration of the account with its registrar: REGISTER with digest auth, refresh before
//! expiry, retry after failure, un-REGISTER on shutdown.

use std::time::{Duration, Instant};

use homeagent_sip::auth;
use homeagent_sip::message::{Method, NameAddr, Response, Uri};
use homeagent_sip::transaction::TransactionId;

use crate::config::Account;
use crate::event::{PhoneEvent, RegistrationState};
use crate::phone::Phone;

/// Wait before trying again after a failed registration.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Refresh this long before the binding expires (or at half the lifetime when it is short).
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Registrar {
    account: Account,
    call_id: Option<String>,
    from_tag: String,
    cseq: u32,
    transaction: Option<TransactionId>,
    /// Expiry we are asking for in the request in flight (0 = un-REGISTER).
    asking: u32,
    /// Nonces already answered, to give up when the same challenge comes back.
    answered_nonce: Option<String>,
    next_at: Option<Instant>,
    registered: bool,
    unregistering: bool,
    done: bool,
}

impl Registrar {
    pub(crate) fn new(account: Account) -> Self {
        Self {
            account,
            call_id: None,
            from_tag: String::new(),
            cseq: 0,
            transaction: None,
            asking: 0,
            answered_nonce: None,
            next_at: None,
            registered: false,
            unregistering: false,
            done: false,
        }
    }

    pub(crate) fn start(&mut self, phone: &mut Phone, now: Instant) {
        self.from_tag = phone.rng.token();
        self.call_id = Some(phone.new_call_id_token());
        self.send(phone, now, self.account.expires, None);
        phone.emit(PhoneEvent::Registration(RegistrationState::Registering));
    }

    pub(crate) fn owns(&self, id: TransactionId) -> bool {
        self.transaction == Some(id)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.transaction.is_some() {
            None
        } else {
            self.next_at
        }
    }

    /// Nothing in flight and nothing left to do (after an un-REGISTER, or never registered).
    pub(crate) fn is_idle(&self) -> bool {
        self.done || (self.transaction.is_none() && !self.registered && self.unregistering)
    }

    pub(crate) fn handle_timeout(&mut self, phone: &mut Phone, now: Instant) {
        if self.transaction.is_none()
            && !self.unregistering
            && self.next_at.is_some_and(|t| t <= now)
        {
            self.answered_nonce = None;
            self.send(phone, now, self.account.expires, None);
        }
    }

    pub(crate) fn unregister(&mut self, phone: &mut Phone, now: Instant) {
        self.unregistering = true;
        self.next_at = None;
        if self.registered || self.transaction.is_some() {
            self.answered_nonce = None;
            self.send(phone, now, 0, None);
        } else {
            self.done = true;
        }
    }

    pub(crate) fn handle_response(
        &mut self,
        phone: &mut Phone,
        _id: TransactionId,
        response: &Response,
    ) {
        if response.status < 200 {
            return;
        }
        self.transaction = None;
        let now = phone.now;
        match response.status {
            200..=299 if self.asking == 0 => {
                self.registered = false;
                self.done = true;
                phone.emit(PhoneEvent::Registration(RegistrationState::Unregistered));
            }
            200..=299 => {
                let granted =
                    granted_expiry(response, &phone.contact(self.account.proxy.transport).uri)
                        .unwrap_or(self.asking);
                let lifetime = Duration::from_secs(u64::from(granted));
                let refresh = lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
                self.next_at = Some(now + refresh.max(Duration::from_secs(1)));
                self.registered = true;
                self.answered_nonce = None;
                phone.emit(PhoneEvent::Registration(RegistrationState::Registered {
                    expires: granted,
                }));
            }
            401 | 407 => match auth::Challenge::from_response(response) {
                Some((challenge, header))
                    if self.answered_nonce.as_deref() != Some(challenge.nonce.as_str())
                        || challenge.stale =>
                {
                    self.answered_nonce = Some(challenge.nonce.clone());
                    let asking = self.asking;
                    self.send(phone, now, asking, Some((header, challenge)));
                }
                _ => self.failed(
                    phone,
                    response.status,
                    "authentication failed: check the user name and password",
                ),
            },
            423 => {
                // Interval too brief: ask for the registrar's minimum.
                let minimum = response
                    .headers
                    .get("Min-Expires")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(3600);
                self.account.expires = minimum;
                self.send(phone, now, minimum, None);
            }
            status => {
                let reason = response.reason.clone();
                self.failed(phone, status, &reason);
            }
        }
    }

    pub(crate) fn handle_transaction_timeout(&mut self, phone: &mut Phone, _id: TransactionId) {
        self.transaction = None;
        if self.unregistering {
            self.done = true;
            return;
        }
        self.registered = false;
        self.next_at = Some(phone.now + RETRY_AFTER);
        phone.emit(PhoneEvent::Registration(RegistrationState::Failed {
            code: None,
            reason: "the registrar did not answer".to_owned(),
        }));
    }

    pub(crate) fn uses(&self, peer: homeagent_sip::transaction::Peer) -> bool {
        self.account.proxy == peer
    }

    /// The registrar cannot be reached (connection refused).
    pub(crate) fn unreachable(&mut self, phone: &mut Phone) {
        if self.transaction.take().is_some() {
            self.failed(phone, 503, "cannot reach the registrar");
        }
    }

    fn failed(&mut self, phone: &mut Phone, status: u16, reason: &str) {
        if self.unregistering {
            self.done = true;
            return;
        }
        self.registered = false;
        self.next_at = Some(phone.now + RETRY_AFTER);
        phone.emit(PhoneEvent::Registration(RegistrationState::Failed {
            code: Some(status),
            reason: reason.to_owned(),
        }));
    }

    fn send(
        &mut self,
        phone: &mut Phone,
        _now: Instant,
        expires: u32,
        challenge: Option<(&'static str, auth::Challenge)>,
    ) {
        let account = &self.account;
        let transport = account.proxy.transport;
        let registrar_uri = Uri::sip(None, &account.domain, registrar_port(&account.registrar));
        let mut aor = NameAddr::new(Uri::sip(Some(&account.user), &account.domain, None));
        let to = aor.clone();
        aor.set_tag(&self.from_tag);
        self.cseq += 1;
        let call_id = self.call_id.clone().unwrap_or_default();
        let mut request = phone.new_request(
            Method::Register,
            registrar_uri.clone(),
            aor,
            to,
            &call_id,
            self.cseq,
            transport,
        );
        let mut contact = phone.contact(transport);
        contact.params.set("expires", Some(&expires.to_string()));
        request.headers.push("Contact", contact.to_string());
        request.headers.push("Expires", expires.to_string());
        request.headers.push("Allow", crate::phone::ALLOW);
        if let Some((header, challenge)) = challenge {
            let user = account.auth_user.as_deref().unwrap_or(&account.user);
            let cnonce = phone.rng.token();
            let uri = registrar_uri.to_string();
            let answer = auth::DigestAnswer {
                method: &Method::Register,
                uri: &uri,
                username: user,
                password: &account.password,
                cnonce: &cnonce,
                nonce_count: 1,
            };
            match challenge.answer(&answer) {
                Ok(value) => request.headers.push(header, value),
                Err(error) => {
                    let reason = format!("cannot answer the registrar's challenge: {error}");
                    self.failed(phone, 401, &reason);
                    return;
                }
            }
        }
        self.asking = expires;
        let proxy = self.account.proxy;
        self.transaction = Some(phone.send_request(proxy, request));
    }
}

/// The port written in the registrar URI, if any (`sip:host:port;...`).
fn registrar_port(registrar: &str) -> Option<u16> {
    registrar.parse::<Uri>().ok().and_then(|u| u.port)
}

/// The expiry the registrar granted to our contact: its `expires` param, else `Expires`.
fn granted_expiry(response: &Response, our_contact: &Uri) -> Option<u32> {
    let ours = response.headers.contacts().into_iter().find(|c| {
        c.uri.host == our_contact.host
            && c.uri.port == our_contact.port
            && c.uri.user == our_contact.user
    });
    ours.and_then(|c| c.params.get("expires").and_then(|v| v.parse().ok()))
        .or_else(|| response.headers.expires())
}
