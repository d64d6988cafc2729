//! The account's registration: drives [`homeagent_sip::registration::Registration`] (REGISTER,
//! digest, refresh time, un-REGISTER) through the transaction layer, retries after failures
//! and reports the state as events.

use std::time::{Duration, Instant};

use homeagent_sip::message::{Method, NameAddr, Response, Uri};
use homeagent_sip::registration::{Registration, RegistrationConfig, RegistrationEvent};
use homeagent_sip::transaction::{Peer, TransactionId, Transport};

use crate::config::Account;
use crate::event::{PhoneEvent, RegistrationState};
use crate::phone::Phone;

/// Wait before trying again after a failed registration.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Refresh at least this long before the binding expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Behind a NAT over UDP, an OPTIONS to the registrar this often keeps the router's binding
/// (often dropped after 30-60 s idle) open, so the platform's INVITEs still reach us.
pub(crate) const NAT_KEEPALIVE: Duration = Duration::from_secs(25);

#[derive(Debug)]
pub(crate) struct Registrar {
    proxy: Peer,
    /// The registrar's URI and our address of record (for the NAT keepalive's OPTIONS).
    registrar: Uri,
    aor: Uri,
    registration: Registration,
    transaction: Option<TransactionId>,
    /// When to send the next REGISTER (refresh or retry).
    next_at: Option<Instant>,
    /// Next NAT keepalive (registered over UDP with a public address learned).
    keepalive_at: Option<Instant>,
    registered: bool,
    unregistering: bool,
    /// Nothing more to do: un-REGISTER answered (or never registered) during shutdown.
    done: bool,
}

impl Registrar {
    pub(crate) fn new(phone: &mut Phone, account: &Account) -> Self {
        let transport = account.proxy.transport;
        let contact = phone.contact(transport).uri;
        let registrar = Uri::sip(None, &account.domain, registrar_port(&account.registrar));
        let config = RegistrationConfig {
            registrar,
            aor: Uri::sip(Some(&account.user), &account.domain, None),
            via_host: contact.host.clone(),
            via_port: contact.port,
            contact,
            expires: account.expires,
            username: account
                .auth_user
                .clone()
                .unwrap_or_else(|| account.user.clone()),
            password: account.password.clone(),
            call_id: phone.new_call_id_token(),
            from_tag: phone.rng.token(),
            transport,
            refresh_margin: REFRESH_MARGIN,
            // RFC 5626 §4.2: outbound for flows (connections) only.
            instance: phone.config.instance_id.clone().filter(|_| {
                matches!(
                    transport,
                    Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss
                )
            }),
        };
        Self {
            proxy: account.proxy,
            registrar: config.registrar.clone(),
            aor: config.aor.clone(),
            registration: Registration::new(config),
            transaction: None,
            next_at: None,
            keepalive_at: None,
            registered: false,
            unregistering: false,
            done: false,
        }
    }

    pub(crate) fn start(&mut self, phone: &mut Phone) {
        let request = self.registration.register(phone.rng.next_u64());
        self.transaction = Some(phone.send_request(self.proxy, request));
        phone.emit(PhoneEvent::Registration(RegistrationState::Registering));
    }

    /// Our address changed: register the new Contact now.
    pub(crate) fn move_contact(&mut self, phone: &mut Phone) {
        self.registration
            .set_contact(phone.contact(self.proxy.transport).uri);
        self.start(phone);
    }

    pub(crate) fn owns(&self, id: TransactionId) -> bool {
        self.transaction == Some(id)
    }

    pub(crate) fn uses(&self, peer: Peer) -> bool {
        self.proxy == peer
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        let keepalive = self.keepalive_at.filter(|_| !self.unregistering);
        if self.transaction.is_some() {
            keepalive
        } else {
            match (self.next_at, keepalive) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
    }

    /// Nothing in flight and nothing left to do.
    pub(crate) fn is_idle(&self) -> bool {
        self.done
    }

    pub(crate) fn handle_timeout(&mut self, phone: &mut Phone, now: Instant) {
        if self.transaction.is_none()
            && !self.unregistering
            && self.next_at.is_some_and(|t| t <= now)
        {
            self.next_at = None;
            let request = self.registration.register(phone.rng.next_u64());
            self.transaction = Some(phone.send_request(self.proxy, request));
        }
        if !self.unregistering && self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = Some(now + NAT_KEEPALIVE);
            self.send_keepalive(phone);
        }
    }

    /// An OPTIONS to the registrar (its answer, whatever it is, is not needed).
    fn send_keepalive(&mut self, phone: &mut Phone) {
        let contact = phone.contact(Transport::Udp);
        let mut from = NameAddr::new(self.aor.clone());
        from.set_tag(&phone.rng.token());
        let call_id = phone.new_call_id_token();
        let mut request = phone.new_request(
            Method::Options,
            self.registrar.clone(),
            from,
            NameAddr::new(self.registrar.clone()),
            &call_id,
            1,
            Transport::Udp,
        );
        request.headers.push("Contact", contact.to_string());
        request.headers.push("Content-Length", "0");
        phone.send_request(self.proxy, request);
    }

    pub(crate) fn unregister(&mut self, phone: &mut Phone) {
        self.unregistering = true;
        self.next_at = None;
        if self.registered || self.transaction.is_some() {
            let request = self.registration.unregister(phone.rng.next_u64());
            self.transaction = Some(phone.send_request(self.proxy, request));
        } else {
            self.done = true;
        }
    }

    pub(crate) fn handle_response(&mut self, phone: &mut Phone, response: &Response) {
        // Behind a NAT the registrar tells us where our requests come from (RFC 3581): that
        // is the address it can reach us at, so it becomes our Contact (and SDP address).
        let moved = self.proxy.transport == Transport::Udp
            && response
                .headers
                .via()
                .is_some_and(|via| phone.learn_public_address(&via));
        if moved {
            self.registration
                .set_contact(phone.contact(Transport::Udp).uri);
            // The network path changed: calls with ICE find a new pair.
            phone.restart_ice_calls();
        }
        let random = phone.rng.next_u64();
        let Some(event) = self
            .registration
            .handle_response(phone.now, response, random)
        else {
            return;
        };
        self.transaction = None;
        match event {
            RegistrationEvent::Send(request) => {
                self.transaction = Some(phone.send_request(self.proxy, request));
            }
            RegistrationEvent::Registered {
                expires,
                refresh_at,
            } => {
                self.registered = true;
                self.keepalive_at = (self.proxy.transport == Transport::Udp
                    && phone.public_addr.is_some())
                .then(|| phone.now + NAT_KEEPALIVE);
                // Registered with an address the registrar cannot reach: again at once, with
                // the public one.
                self.next_at = Some(if moved { phone.now } else { refresh_at });
                phone.emit(PhoneEvent::Registration(RegistrationState::Registered {
                    expires,
                }));
            }
            RegistrationEvent::Unregistered => {
                self.registered = false;
                self.done = true;
                phone.emit(PhoneEvent::Registration(RegistrationState::Unregistered));
            }
            RegistrationEvent::Failed { code, reason } => {
                let reason = match code {
                    401 | 407 => format!(
                        "authentication failed ({reason}): check the user name and password"
                    ),
                    _ => reason,
                };
                self.failed(phone, Some(code), reason);
            }
            _ => {}
        }
    }

    pub(crate) fn handle_transaction_timeout(&mut self, phone: &mut Phone) {
        self.transaction = None;
        self.failed(phone, None, "the registrar did not answer".to_owned());
    }

    /// The registrar cannot be reached (connection refused).
    pub(crate) fn unreachable(&mut self, phone: &mut Phone) {
        if self.transaction.take().is_some() {
            self.failed(phone, None, "cannot reach the registrar".to_owned());
        }
    }

    fn failed(&mut self, phone: &mut Phone, code: Option<u16>, reason: String) {
        if self.unregistering {
            self.done = true;
            return;
        }
        self.registered = false;
        self.keepalive_at = None;
        self.next_at = Some(phone.now + RETRY_AFTER);
        phone.emit(PhoneEvent::Registration(RegistrationState::Failed {
            code,
            reason,
        }));
    }
}

/// The port written in the registrar URI, if any (`sip:host:port;...`).
fn registrar_port(registrar: &str) -> Option<u16> {
    registrar.parse::<Uri>().ok().and_then(|u| u.port)
}
