//! The phone: one SIP transaction layer, an optional registration, and the calls.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use homeagent_sip::message::{Headers, Message, Method, NameAddr, Request, Response, Uri, Via};
use homeagent_sip::transaction::{
    Peer, TransactionEvent, TransactionId, TransactionLayer, Transmit, Transport,
};

use crate::agent::{Agent, AgentState};
use crate::call::Call;
use crate::config::PhoneConfig;
use crate::event::{CallId, MediaCommand, PhoneEvent};
use crate::presence::Presence;
use crate::register::Registrar;
use crate::rng::Rng;

/// Methods we accept, for `Allow`.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// How long a shutdown may wait for BYEs and the un-REGISTER to complete.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// What a front end asks of the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Call `uri` (`sip:`/`sips:` URI, or a user/number completed with the account domain).
    /// `next_hop` is where to send the INVITE when there is no account proxy (the driver
    /// resolves the URI's host).
    Call {
        uri: String,
        next_hop: Option<Peer>,
    },
    Answer {
        call: CallId,
    },
    Decline {
        call: CallId,
    },
    Hangup {
        call: CallId,
    },
    Hold {
        call: CallId,
    },
    Resume {
        call: CallId,
    },
    /// Blind transfer (REFER) of a connected call to `target` (a SIP URI, or a user/number
    /// completed with the account domain).
    Transfer {
        call: CallId,
        target: String,
    },
    /// Attended transfer: connects the other party of `call` with the party of our
    /// `consultation` call (REFER with Replaces); both our calls then end.
    AttendedTransfer {
        call: CallId,
        consultation: CallId,
    },
    /// The agent logs in or out, or becomes ready or not ready (on-call and after-call work
    /// follow the calls).
    SetAgentState {
        state: AgentState,
    },
    /// The call's wrap-up is done: after-call work ends.
    WrapupDone,
    /// Hang up every call, unregister, then report [`PhoneEvent::Stopped`].
    Shutdown,
}

/// Everything that can happen to the phone.
#[derive(Debug, Clone)]
pub enum Input {
    /// A UDP datagram (not yet parsed).
    Datagram {
        now: Instant,
        from: Peer,
        bytes: Vec<u8>,
    },
    /// A message framed from a stream transport.
    Message {
        now: Instant,
        from: Peer,
        message: Message,
    },
    Timeout(Instant),
    Command(Instant, Command),
    /// The driver bound an RTP port pair (`port`, `port + 1`) the phone may use for a call.
    MediaPortReady(u16),
    /// A TURN relay allocated for the media port `port`: its ICE `a=candidate` value, offered
    /// with the host candidate by calls on that port (networks where direct UDP is blocked).
    RelayCandidate {
        port: u16,
        candidate: String,
    },
    /// Sending to `to` failed (connection refused, unreachable).
    TransportError {
        now: Instant,
        to: Peer,
    },
    /// The stream connection (TCP/TLS flow) to `to` broke after it was up: a registration
    /// bound to it is renewed at once over a new connection (RFC 5626 flow recovery).
    FlowClosed {
        now: Instant,
        to: Peer,
    },
    /// The network under the phone changed (another interface or address, a new route):
    /// calls with ICE restart it to find a new pair. With `local_ip` (the address the route
    /// to the registrar now leaves from), Contact and SDP move to it and the phone registers
    /// again at once.
    NetworkChanged {
        now: Instant,
        local_ip: Option<IpAddr>,
    },
}

/// What the phone asks its driver to do, in order.
// Media commands (with the negotiated ICE/SRTP parameters) come a few per call: boxing them
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    Transmit(Transmit),
    Media(MediaCommand),
    Event(PhoneEvent),
    /// Nothing more to do until this time (`None`: until the next input).
    Timeout(Option<Instant>),
}

/// A sans-IO SIP phone (see the crate documentation for the contract).
#[derive(Debug)]
pub struct Phone {
    pub(crate) config: PhoneConfig,
    pub(crate) rng: Rng,
    /// Media keys (SRTP): a cryptographic generator, seeded by the driver from the OS.
    keys: KeyGenerator,
    pub(crate) transactions: TransactionLayer,
    registrar: Option<Registrar>,
    presence: Option<Presence>,
    pub(crate) calls: BTreeMap<CallId, Call>,
    next_call: u64,
    pub(crate) media_ports: VecDeque<u16>,
    /// TURN relay candidates of media ports, from the driver.
    pub(crate) relay_candidates: std::collections::HashMap<u16, String>,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) now: Instant,
    pub(crate) agent: Agent,
    shutdown: Option<Instant>,
    stopped: bool,
    /// Requests dropped by the inbound filter (scanners), for the logs.
    ignored_requests: u64,
    /// Our host in Via and Contact over a WebSocket (RFC 7118 §5: a random `.invalid` name;
    /// the server reaches us over the connection only).
    ws_host: String,
    /// Our address as the registrar sees it (`received`/`rport` of its answers), when it
    /// differs from the local one: we are behind a NAT.
    pub(crate) public_addr: Option<SocketAddr>,
}

/// ChaCha-based generator for media keys; its state never reaches a log.
struct KeyGenerator(rand::rngs::StdRng);

impl KeyGenerator {
    /// Deterministic from a 64-bit seed: tests only; the driver calls [`Phone::set_key_seed`].
    fn from_seed(seed: u64) -> Self {
        use rand::SeedableRng;
        Self(rand::rngs::StdRng::seed_from_u64(seed))
    }
}

impl std::fmt::Debug for KeyGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyGenerator")
    }
}

impl Phone {
    /// Seeds the media-key generator with 32 bytes from the OS (the driver does this at start;
    /// without it, keys follow from the phone's 64-bit seed, which is fine for tests only).
    pub fn set_key_seed(&mut self, seed: [u8; 32]) {
        use rand::SeedableRng;
        self.keys = KeyGenerator(rand::rngs::StdRng::from_seed(seed));
    }

    /// Fresh key material for one call's SRTP.
    pub(crate) fn srtp_key_material(
        &mut self,
    ) -> [u8; homeagent_media::sdp::SRTP_KEY_MATERIAL_LEN] {
        use rand::RngCore;
        let mut material = [0; homeagent_media::sdp::SRTP_KEY_MATERIAL_LEN];
        self.keys.0.fill_bytes(&mut material);
        material
    }

    /// A random ICE credential of `len` ice-chars (RFC 8839: ALPHA / DIGIT / "+" / "/"), from
    /// the key generator: the password authenticates connectivity checks.
    pub(crate) fn ice_token(&mut self, len: usize) -> String {
        use rand::Rng;
        const ICE_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..len)
            .map(|_| {
                let index = self.keys.0.gen_range(0..ICE_CHARS.len());
                ICE_CHARS.get(index).copied().map_or('A', char::from)
            })
            .collect()
    }

    /// A phone that starts registering (if it has an account) at the first poll.
    pub fn new(config: PhoneConfig, seed: u64, now: Instant) -> Self {
        let account = config.account.clone();
        let public_addr = config
            .public_addr
            .filter(|public| *public != config.local.addr);
        let mut phone = Self {
            config,
            rng: Rng::new(seed),
            keys: KeyGenerator::from_seed(seed),
            transactions: TransactionLayer::new(Default::default()),
            registrar: None,
            presence: None,
            calls: BTreeMap::new(),
            next_call: 1,
            media_ports: VecDeque::new(),
            relay_candidates: std::collections::HashMap::new(),
            outputs: VecDeque::new(),
            now,
            agent: Agent::new(now),
            shutdown: None,
            stopped: false,
            ignored_requests: 0,
            public_addr,
            // Drawn from its own generator so the phone's other tokens do not change.
            ws_host: format!("{}.invalid", Rng::new(seed.rotate_left(32)).token()),
        };
        // The agent's starting state, for the front ends.
        phone.emit_agent_state();
        if let Some(account) = account {
            if phone.config.acd.publish_presence {
                phone.presence = Some(Presence::new(&mut phone, &account));
            }
            let mut registrar = Registrar::new(&mut phone, &account);
            registrar.start(&mut phone);
            phone.registrar = Some(registrar);
        }
        phone
    }

    pub fn handle_input(&mut self, input: Input) {
        match input {
            Input::Datagram { now, from, bytes } => {
                self.now = now;
                if self.trusts(from) {
                    self.transactions.handle_datagram(now, from, &bytes);
                } else if let Ok(message) = Message::parse(&bytes) {
                    // A stranger's garbage gets no 400 either.
                    self.handle_untrusted(now, from, message);
                }
            }
            Input::Message { now, from, message } => {
                self.now = now;
                if self.trusts(from) {
                    self.transactions.handle_message(now, from, message);
                } else {
                    self.handle_untrusted(now, from, message);
                }
            }
            Input::Timeout(now) => {
                self.now = now;
                self.transactions.handle_timeout(now);
                self.with_registrar(|registrar, phone| registrar.handle_timeout(phone, now));
                if self.agent.handle_timeout(now, &self.config.acd.wrapup) {
                    self.emit_agent_state();
                }
                self.with_presence(|presence, phone| presence.handle_timeout(phone, now));
                let due: Vec<CallId> = self
                    .calls
                    .iter()
                    .filter(|(_, call)| call.deadline().is_some_and(|d| d <= now))
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    self.with_call(id, |call, phone| call.handle_timeout(phone, now));
                }
                if self.shutdown.is_some_and(|deadline| deadline <= now) {
                    self.finish_shutdown();
                }
            }
            Input::Command(now, command) => {
                self.now = now;
                self.command(now, command);
            }
            Input::MediaPortReady(port) => self.media_ports.push_back(port),
            Input::RelayCandidate { port, candidate } => {
                self.relay_candidates.insert(port, candidate);
            }
            Input::TransportError { now, to } => {
                self.now = now;
                self.transport_error(to);
            }
            Input::NetworkChanged { now, local_ip } => {
                self.now = now;
                self.network_changed(local_ip);
            }
            Input::FlowClosed { now, to } => {
                self.now = now;
                self.flow_closed(to);
            }
        }
        self.process_transaction_events();
        self.reap_calls();
        if self.shutdown.is_some()
            && self.calls.is_empty()
            && self.registrar.as_ref().is_none_or(Registrar::is_idle)
        {
            self.finish_shutdown();
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        if let Some(transmit) = self.transactions.poll_transmit() {
            return Output::Transmit(transmit);
        }
        let mut deadline = self.transactions.poll_timeout();
        let mut earliest = |candidate: Option<Instant>| {
            if let Some(c) = candidate {
                deadline = Some(deadline.map_or(c, |d| d.min(c)));
            }
        };
        if let Some(registrar) = &self.registrar {
            earliest(registrar.deadline());
        }
        for call in self.calls.values() {
            earliest(call.deadline());
        }
        earliest(self.agent.deadline());
        if let Some(presence) = &self.presence {
            earliest(presence.deadline());
        }
        earliest(self.shutdown);
        Output::Timeout(deadline)
    }

    fn command(&mut self, now: Instant, command: Command) {
        if self.stopped {
            return;
        }
        match command {
            Command::Call { uri, next_hop } => {
                let id = self.new_call_id();
                match Call::dial(self, id, &uri, next_hop, now) {
                    Ok(call) => {
                        self.calls.insert(id, call);
                    }
                    Err(failure) => {
                        self.emit(PhoneEvent::Calling { call: id, to: uri });
                        self.emit(failure.into_event(id));
                    }
                }
            }
            Command::Answer { call } => self.with_call(call, |c, phone| c.answer(phone, false)),
            Command::Decline { call } => self.with_call(call, |c, phone| c.decline(phone)),
            Command::Hangup { call } => self.with_call(call, |c, phone| c.hang_up(phone)),
            Command::Hold { call } => self.with_call(call, |c, phone| c.set_hold(phone, true)),
            Command::Resume { call } => self.with_call(call, |c, phone| c.set_hold(phone, false)),
            Command::Transfer { call, target } => {
                self.with_call(call, |c, phone| c.transfer(phone, &target))
            }
            Command::AttendedTransfer { call, consultation } => {
                let replaces = self
                    .calls
                    .get(&consultation)
                    .filter(|_| consultation != call)
                    .and_then(Call::replaces);
                self.with_call(call, |c, phone| c.attended_transfer(phone, replaces))
            }
            Command::SetAgentState { state } => {
                if self.agent.choose(state, now) {
                    self.emit_agent_state();
                }
            }
            Command::WrapupDone => {
                if self.agent.wrapup_done(now, &self.config.acd.wrapup) {
                    self.emit_agent_state();
                }
            }
            Command::Shutdown => {
                if self.shutdown.is_some() {
                    return;
                }
                self.shutdown = Some(now + SHUTDOWN_GRACE);
                let ids: Vec<CallId> = self.calls.keys().copied().collect();
                for id in ids {
                    self.with_call(id, |c, phone| c.hang_up(phone));
                }
                self.with_registrar(|registrar, phone| registrar.unregister(phone));
            }
        }
    }

    /// Whether new requests from `from` are taken: from anyone without a registrar (direct
    /// calls); with one, only from its (the proxy's) host or a platform host (any port: the
    /// platform's port only matters for auto-answer).
    fn trusts(&self, from: Peer) -> bool {
        let Some(account) = self.config.account.as_ref() else {
            return true;
        };
        !self.config.inbound_filter
            || account.proxy.addr.ip() == from.addr.ip()
            || self
                .config
                .acd
                .platform
                .iter()
                .any(|(ip, _)| *ip == from.addr.ip())
    }

    /// A message from an address we don't take requests from: responses go on (they only
    /// match our own transactions), requests only when they belong to a call's dialog (the
    /// other party's BYE without a proxy in the path). The rest is dropped without an answer.
    fn handle_untrusted(&mut self, now: Instant, from: Peer, message: Message) {
        let admitted = match &message {
            Message::Response(_) => true,
            Message::Request(request) => self.call_for_request(request).is_some(),
        };
        if admitted {
            self.transactions.handle_message(now, from, message);
        } else {
            self.ignored_requests += 1;
            tracing::debug!(
                from = %from.addr,
                ignored = self.ignored_requests,
                "ignoring a request from an address that is neither the registrar nor the platform"
            );
        }
    }

    fn finish_shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            if let Some(mut call) = self.calls.remove(&id) {
                call.abandon(self);
            }
        }
        self.emit(PhoneEvent::Stopped);
    }

    fn process_transaction_events(&mut self) {
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TransactionEvent::Request { id, request, from } => self.request(id, request, from),
                TransactionEvent::Response { id, response } => self.response(id, response),
                TransactionEvent::Ack { request, .. } => {
                    if let Some(call) = self.call_for_request(&request) {
                        self.with_call(call, |c, phone| c.handle_ack(phone, &request));
                    }
                }
                TransactionEvent::Cancelled { invite, .. } => {
                    if let Some(call) = self.call_for_invite(invite) {
                        self.with_call(call, |c, phone| c.handle_cancel(phone));
                    }
                }
                TransactionEvent::Timeout { id } => self.transaction_timeout(id),
                TransactionEvent::NoAck { id } => {
                    if let Some(call) = self.call_for_invite(id) {
                        self.with_call(call, |c, phone| c.handle_no_ack(phone));
                    }
                }
                _ => {}
            }
        }
    }

    fn request(&mut self, id: TransactionId, request: Request, from: Peer) {
        let in_dialog = request.headers.to().is_some_and(|to| to.tag().is_some());
        if in_dialog {
            match self.call_for_request(&request) {
                Some(call) => self.with_call(call, |c, phone| c.handle_request(phone, id, request)),
                None => self.respond(id, &request, 481, None),
            }
            return;
        }
        match request.method {
            Method::Invite => {
                if self.shutdown.is_some() {
                    self.respond(id, &request, 503, None);
                    return;
                }
                let call_id = self.new_call_id();
                if let Some(call) = Call::incoming(self, call_id, id, request, from) {
                    self.calls.insert(call_id, call);
                }
            }
            Method::Options => {
                let mut response =
                    Response::from_request(&request, 200, "OK", Some(&self.rng.token()));
                self.add_capabilities(&mut response.headers);
                self.send_response(id, response);
            }
            Method::Ack => {}
            Method::Register
            | Method::Subscribe
            | Method::Publish
            | Method::Refer
            | Method::Message => {
                self.respond(id, &request, 405, None);
            }
            Method::Bye
            | Method::Cancel
            | Method::Info
            | Method::Update
            | Method::Prack
            | Method::Notify => {
                self.respond(id, &request, 481, None);
            }
            Method::Other(_) => self.respond(id, &request, 501, None),
        }
    }

    fn response(&mut self, id: TransactionId, response: Response) {
        if self.presence.as_ref().is_some_and(|p| p.owns(id)) {
            self.with_presence(|presence, phone| presence.handle_response(phone, &response));
            return;
        }
        if self.registrar.as_ref().is_some_and(|r| r.owns(id)) {
            self.with_registrar(|registrar, phone| registrar.handle_response(phone, &response));
            return;
        }
        if let Some(call) = self
            .calls
            .iter()
            .find(|(_, c)| c.owns(id))
            .map(|(id, _)| *id)
        {
            self.with_call(call, |c, phone| c.handle_response(phone, id, response));
        }
    }

    fn transaction_timeout(&mut self, id: TransactionId) {
        if self.presence.as_ref().is_some_and(|p| p.owns(id)) {
            self.with_presence(|presence, _| presence.handle_transaction_timeout());
            return;
        }
        if self.registrar.as_ref().is_some_and(|r| r.owns(id)) {
            self.with_registrar(|registrar, phone| registrar.handle_transaction_timeout(phone));
            return;
        }
        if let Some(call) = self
            .calls
            .iter()
            .find(|(_, c)| c.owns(id))
            .map(|(id, _)| *id)
        {
            self.with_call(call, |c, phone| c.handle_transaction_timeout(phone, id));
        }
    }

    fn call_for_request(&self, request: &Request) -> Option<CallId> {
        let call_id = request.headers.call_id()?;
        let from_tag = request
            .headers
            .from()
            .and_then(|f| f.tag().map(str::to_owned));
        let to_tag = request
            .headers
            .to()
            .and_then(|t| t.tag().map(str::to_owned));
        self.calls
            .iter()
            .find(|(_, call)| call.matches_dialog(call_id, to_tag.as_deref(), from_tag.as_deref()))
            .map(|(id, _)| *id)
    }

    fn call_for_invite(&self, id: TransactionId) -> Option<CallId> {
        self.calls
            .iter()
            .find(|(_, call)| call.owns(id))
            .map(|(id, _)| *id)
    }

    fn reap_calls(&mut self) {
        self.calls.retain(|_, call| !call.is_finished());
    }

    fn with_call(&mut self, id: CallId, f: impl FnOnce(&mut Call, &mut Phone)) {
        if let Some(mut call) = self.calls.remove(&id) {
            f(&mut call, self);
            self.calls.insert(id, call);
        }
    }

    fn with_presence(&mut self, f: impl FnOnce(&mut Presence, &mut Phone)) {
        if let Some(mut presence) = self.presence.take() {
            f(&mut presence, self);
            self.presence = Some(presence);
        }
    }

    fn with_registrar(&mut self, f: impl FnOnce(&mut Registrar, &mut Phone)) {
        if let Some(mut registrar) = self.registrar.take() {
            f(&mut registrar, self);
            self.registrar = Some(registrar);
        }
    }

    fn new_call_id(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        id
    }

    // ---- helpers for calls and registration ----

    pub(crate) fn emit(&mut self, event: PhoneEvent) {
        let agent_changed = match &event {
            PhoneEvent::Answered { .. } | PhoneEvent::Established { .. } => {
                self.agent.call_started(self.now)
            }
            PhoneEvent::Ended { call, .. } => {
                let others_up = self.calls.iter().any(|(id, c)| id != call && c.is_up());
                !others_up && self.agent.calls_ended(self.now, &self.config.acd.wrapup)
            }
            _ => false,
        };
        let registered = matches!(
            event,
            PhoneEvent::Registration(crate::event::RegistrationState::Registered { .. })
        );
        self.outputs.push_back(Output::Event(event));
        if agent_changed {
            self.emit_agent_state();
        } else if registered {
            self.publish_presence();
        }
    }

    /// Publishes the agent's state as presence (where configured and taken).
    fn publish_presence(&mut self) {
        let state = self.agent.state().clone();
        self.with_presence(|presence, phone| presence.publish(phone, &state));
    }

    fn emit_agent_state(&mut self) {
        let state = self.agent.state().clone();
        tracing::info!(state = state.as_str(), "agent state");
        self.outputs
            .push_back(Output::Event(PhoneEvent::AgentState { state }));
        self.publish_presence();
    }

    /// The agent's state and since when.
    pub fn agent_state(&self) -> (&AgentState, Instant) {
        (self.agent.state(), self.agent.since())
    }

    pub(crate) fn media(&mut self, command: MediaCommand) {
        self.outputs.push_back(Output::Media(command));
    }

    /// Sends a final or provisional response without a To tag of ours (stateless answers).
    pub(crate) fn respond(
        &mut self,
        id: TransactionId,
        request: &Request,
        status: u16,
        to_tag: Option<&str>,
    ) {
        let tag = match to_tag {
            Some(tag) => tag.to_owned(),
            None => self.rng.token(),
        };
        let reason = homeagent_sip::message::reason_phrase(status);
        let mut response = Response::from_request(request, status, reason, Some(&tag));
        if status == 405 {
            response.headers.push("Allow", ALLOW);
        }
        response
            .headers
            .push("Server", self.config.user_agent.clone());
        self.send_response(id, response);
    }

    pub(crate) fn send_response(&mut self, id: TransactionId, response: Response) {
        if let Err(error) = self.transactions.send_response(self.now, id, response) {
            // The transaction ended meanwhile (e.g. the caller cancelled): nothing to answer.
            tracing::debug!(%error, %id, "response not sent");
        }
    }

    /// Starts a client transaction for a request built by us.
    pub(crate) fn send_request(&mut self, to: Peer, request: Request) -> TransactionId {
        self.transactions
            .send_request(self.now, to, request)
            // Invariant: every request we build has a top Via with a fresh branch and is not ACK.
            .expect("our requests always carry a branch")
    }

    fn transport_error(&mut self, to: Peer) {
        if self.registrar.as_ref().is_some_and(|r| r.uses(to)) {
            self.with_registrar(|registrar, phone| registrar.unreachable(phone));
        }
        let ids: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.uses(to))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.with_call(id, |call, phone| call.unreachable(phone));
        }
    }

    /// ICE restart of every call with ICE (a re-offer with new credentials): the network
    /// changed under them (new public address, broken connection to the platform).
    pub(crate) fn restart_ice_calls(&mut self) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            self.with_call(id, |call, phone| call.restart_ice(phone));
        }
    }

    fn network_changed(&mut self, local_ip: Option<IpAddr>) {
        if let Some(ip) = local_ip.filter(|ip| *ip != self.config.local.addr.ip()) {
            tracing::info!("our address changed: Contact and SDP follow, registering again");
            self.config.local.addr.set_ip(ip);
            // What the registrar or STUN saw of the old network says nothing of the new one.
            self.public_addr = None;
            if self.shutdown.is_none() {
                self.with_registrar(|registrar, phone| registrar.move_contact(phone));
            }
        }
        self.restart_ice_calls();
    }

    fn flow_closed(&mut self, to: Peer) {
        if self.shutdown.is_some() {
            return;
        }
        if self.registrar.as_ref().is_some_and(|r| r.uses(to)) {
            self.restart_ice_calls();
        }
        self.with_registrar(|registrar, phone| {
            if !registrar.uses(to) {
                return;
            }
            if registrar.deadline().is_some() {
                // Idle until its refresh or retry: register again now, on a new connection.
                registrar.start(phone);
            } else {
                // A REGISTER was in flight on the broken connection: it failed.
                registrar.unreachable(phone);
            }
        });
    }

    pub(crate) fn add_capabilities(&self, headers: &mut Headers) {
        headers.push("Allow", ALLOW);
        headers.push("Accept", "application/sdp");
        headers.push("Supported", "replaces");
        headers.push("Server", self.config.user_agent.clone());
    }

    /// A top Via for a new request from us, with a fresh branch and `rport` (RFC 3581).
    pub(crate) fn new_via(&mut self, transport: Transport) -> Via {
        let branch = homeagent_sip::message::generate_branch(self.rng.next_u64());
        let mut via = match transport {
            Transport::Ws | Transport::Wss => {
                Via::new(transport.as_str(), &self.ws_host, None, &branch)
            }
            _ => Via::new(
                transport.as_str(),
                &host_of(self.config.local.addr.ip()),
                Some(self.config.local.addr.port()),
                &branch,
            ),
        };
        via.params.set("rport", None);
        via
    }

    /// Our Contact for requests and responses sent over `transport`.
    /// Learns our public address from the top Via of a response to our request (RFC 3581
    /// `received` and `rport`); true when it changed. Equal to the local address: no NAT.
    pub(crate) fn learn_public_address(&mut self, via: &Via) -> bool {
        let local = self.config.local.addr;
        let reported = via.params.get("received").is_some()
            || via.params.get("rport").is_some_and(|port| !port.is_empty());
        if !reported {
            // The registrar says nothing of where it sees us: keep what we know (STUN).
            return false;
        }
        let ip = via
            .params
            .get("received")
            .and_then(|ip| ip.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            .unwrap_or(local.ip());
        let port = via
            .params
            .get("rport")
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|port| *port != 0)
            .unwrap_or(local.port());
        let seen = SocketAddr::new(ip, port);
        let public = (seen != local).then_some(seen);
        if public == self.public_addr {
            return false;
        }
        tracing::info!(
            public = ?public,
            "the registrar sees us at another address (NAT): Contact and SDP follow it"
        );
        self.public_addr = public;
        true
    }

    pub(crate) fn contact(&self, transport: Transport) -> NameAddr {
        let user = self
            .config
            .account
            .as_ref()
            .map_or(self.config.contact_user.as_str(), |a| a.user.as_str());
        if matches!(transport, Transport::Ws | Transport::Wss) {
            // RFC 7118 §5.2: `transport=ws` over WS and WSS alike.
            let mut uri = Uri::sip(Some(user), &self.ws_host, None);
            uri.params.set("transport", Some("ws"));
            return NameAddr::new(uri);
        }
        let addr = match (transport, self.public_addr) {
            (Transport::Udp, Some(public)) => public,
            _ => self.config.local.addr,
        };
        let host = host_of(addr.ip());
        let mut uri = Uri::sip(Some(user), &host, Some(addr.port()));
        let secure_account = self.config.account.as_ref().is_some_and(|a| {
            a.registrar
                .trim()
                .get(..5)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sips:"))
        });
        if transport == Transport::Tls && secure_account {
            // RFC 5630: a `sips:` account is reached over TLS end to end; `sips:` says it
            // (no `transport=tls`, which RFC 5630 deprecates).
            uri.scheme = homeagent_sip::message::Scheme::Sips;
        } else if transport != Transport::Udp {
            uri.params
                .set("transport", Some(transport_param(transport)));
        }
        NameAddr::new(uri)
    }

    /// Our address of record: the account's, or `sip:user@local-ip`.
    pub(crate) fn local_aor(&self) -> NameAddr {
        match &self.config.account {
            Some(account) => NameAddr::new(Uri::sip(Some(&account.user), &account.domain, None)),
            None => {
                let host = host_of(self.config.local.addr.ip());
                NameAddr::new(Uri::sip(
                    Some(&self.config.contact_user),
                    &host,
                    Some(self.config.local.addr.port()),
                ))
            }
        }
    }

    /// A new out-of-dialog request with the mandatory headers filled in.
    #[allow(clippy::too_many_arguments)] // the mandatory headers of RFC 3261 §8.1.1, one each
    pub(crate) fn new_request(
        &mut self,
        method: Method,
        uri: Uri,
        from: NameAddr,
        to: NameAddr,
        call_id: &str,
        cseq: u32,
        transport: Transport,
    ) -> Request {
        let mut request = Request::new(method.clone(), uri);
        let via = self.new_via(transport);
        request.headers.push("Via", via.to_string());
        request.headers.push("Max-Forwards", "70");
        request.headers.push("From", from.to_string());
        request.headers.push("To", to.to_string());
        request.headers.push("Call-ID", call_id);
        request.headers.push("CSeq", format!("{cseq} {method}"));
        request
            .headers
            .push("User-Agent", self.config.user_agent.clone());
        request
    }

    pub(crate) fn new_call_id_token(&mut self) -> String {
        let host = host_of(self.config.local.addr.ip());
        format!(
            "{}@{}",
            homeagent_sip::message::generate_call_id([self.rng.next_u64(), self.rng.next_u64()]),
            host.trim_matches(|c| c == '[' || c == ']')
        )
    }
}

pub(crate) fn host_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

pub(crate) fn transport_param(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
    }
}
