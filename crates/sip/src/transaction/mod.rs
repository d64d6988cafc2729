//! Transaction layer (RFC 3261 §17, RFC 6026), sans-IO.
//!
//! One [`TransactionLayer`] owns every client and server transaction of one SIP endpoint.
//! Feed it what arrives ([`TransactionLayer::handle_datagram`] / [`handle_message`]), what the
//! transaction user (TU) sends ([`send_request`], [`send_response`], [`send_stateless`]) and
//! the time ([`handle_timeout`]); then drain [`poll_transmit`] and [`poll_event`], and sleep
//! until [`poll_timeout`].
//!
//! What the layer does by itself:
//! - retransmits requests (timers A, E) and final responses (G, and 2xx to INVITE until the
//!   ACK) on unreliable transports only;
//! - absorbs retransmitted requests, re-sending the last response;
//! - sends `100 Trying` as soon as an INVITE arrives;
//! - sends the ACK for a 300–699 response to an INVITE it sent;
//! - answers CANCEL itself (`200 OK`, or `481` when no INVITE matches) and reports
//!   [`TransactionEvent::Cancelled`] so the TU answers the INVITE with 487;
//! - answers a malformed request with 400 when its headers allow, drops malformed responses;
//! - stamps the top Via of incoming requests with `received`/`rport` (RFC 3581) and sends
//!   responses per RFC 3261 §18.2.2.
//!
//! What it leaves to the TU: ACK for 2xx (sent with `send_stateless`), CANCEL of a ringing
//! INVITE (a client INVITE in Proceeding has no timeout, as in RFC 3261), DNS, connections.
//! Over a stream, the driver frames with [`crate::message::parse_stream`] and passes each
//! message to `handle_message` (errors to [`TransactionLayer::reject_malformed`]).
//!
//! [`handle_message`]: TransactionLayer::handle_message
//! [`send_request`]: TransactionLayer::send_request
//! [`send_response`]: TransactionLayer::send_response
//! [`send_stateless`]: TransactionLayer::send_stateless
//! [`handle_timeout`]: TransactionLayer::handle_timeout
//! [`poll_transmit`]: TransactionLayer::poll_transmit
//! [`poll_event`]: TransactionLayer::poll_event
//! [`poll_timeout`]: TransactionLayer::poll_timeout

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::message::{BRANCH_MAGIC_COOKIE, Message, Method, ParseError, Request, Response, Via};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Reliable transports get no retransmissions and zero wait timers.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
}

/// A remote address and the transport to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub message: Message,
}

/// Identifies a transaction for the lifetime of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Timer base values (RFC 3261 §17.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; default 500 ms.
    pub t1: Duration,
    /// Maximum retransmission interval; default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network; default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What the layer reports to the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionEvent {
    /// A new request (not ACK, not CANCEL): a server transaction was created. Its top Via
    /// carries `received`/`rport` as stamped by the layer.
    Request {
        id: TransactionId,
        from: Peer,
        request: Request,
    },
    /// A response to a client transaction: provisional, final, and (RFC 6026) every 2xx
    /// to an INVITE, retransmissions included, so the TU can ACK each.
    Response {
        id: TransactionId,
        response: Response,
    },
    /// An ACK for a 2xx. `invite` is the INVITE server transaction it matched (first ACK
    /// only; repeats are absorbed), or `None` when it matched none.
    Ack {
        invite: Option<TransactionId>,
        from: Peer,
        request: Request,
    },
    /// A CANCEL matched the INVITE server transaction `invite` (still without final
    /// response). The layer already answered the CANCEL with 200; the TU should answer the
    /// INVITE with 487.
    Cancelled {
        invite: TransactionId,
        cancel: Request,
    },
    /// No final response in time (timer B or F), or no ACK for a 300–699 (timer H).
    Timeout { id: TransactionId },
    /// A 2xx to an INVITE was never acknowledged (64·T1).
    NoAck { id: TransactionId },
    /// The transaction is gone; its id will not be reported again.
    Terminated { id: TransactionId },
}

/// Why the TU's request could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("request has no top Via with a branch")]
    MissingBranch,
    #[error("ACK is sent with send_stateless")]
    Ack,
    #[error("unknown or terminated transaction")]
    UnknownTransaction,
    #[error("transaction cannot send this response in its state")]
    InvalidState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // The RFC's names.
enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calling (client INVITE) or Trying (non-INVITE).
    Initial,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
struct Transaction {
    kind: Kind,
    state: State,
    /// Client: where requests go. Server: where responses go.
    peer: Peer,
    request: Request,
    key: String,
    last_response: Option<Response>,
    /// ACK sent for a 300–699 (client INVITE).
    ack: Option<Request>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// The timer that ends the current state (B, D, F, H, I, J, K, L, M).
    deadline: Option<Instant>,
    acked: bool,
}

/// All transactions of one endpoint. See the module documentation for the contract.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: TimerConfig,
    next_id: u64,
    transactions: BTreeMap<TransactionId, Transaction>,
    client_keys: HashMap<String, TransactionId>,
    server_keys: HashMap<String, TransactionId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        TransactionLayer {
            timers,
            next_id: 0,
            transactions: BTreeMap::new(),
            client_keys: HashMap::new(),
            server_keys: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Parses and handles one datagram (or one framed stream message). A malformed request
    /// is answered with 400 when possible; other malformed input is dropped and logged.
    pub fn handle_datagram(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        match Message::parse(bytes) {
            Ok(message) => self.handle_message(now, from, message),
            Err(error) => self.reject_malformed(from, &error),
        }
    }

    /// Answers a message that failed to parse (e.g. from [`parse_stream`]) with 400/505
    /// when it was a request whose headers allow it; otherwise only logs it.
    ///
    /// [`parse_stream`]: crate::message::parse_stream
    pub fn reject_malformed(&mut self, from: Peer, error: &ParseError) {
        tracing::debug!(%error, peer = ?from.addr, "dropping malformed SIP message");
        if let Some(response) = error.bad_request_response() {
            self.send_response_stateless(from, response);
        }
    }

    /// Handles one parsed message.
    pub fn handle_message(&mut self, now: Instant, from: Peer, message: Message) {
        match message {
            Message::Request(request) => self.handle_request(now, from, request),
            Message::Response(response) => self.handle_response(now, response),
        }
    }

    /// Starts a client transaction. The request must carry a top Via with a branch
    /// (`z9hG4bK...`, unique per transaction); the transport in the Via is the caller's.
    pub fn send_request(
        &mut self,
        now: Instant,
        to: Peer,
        request: Request,
    ) -> Result<TransactionId, SendError> {
        if request.method == Method::Ack {
            return Err(SendError::Ack);
        }
        let branch = request
            .headers
            .via()
            .and_then(|v| v.branch().map(str::to_owned))
            .ok_or(SendError::MissingBranch)?;
        let key = format!("{branch}|{}", request.method);
        let kind = if request.method == Method::Invite {
            Kind::ClientInvite
        } else {
            Kind::ClientNonInvite
        };
        let id = self.allocate_id();
        let t1 = self.timers.t1;
        let unreliable = !to.transport.is_reliable();
        self.transmits.push_back(Transmit {
            to,
            message: Message::Request(request.clone()),
        });
        self.client_keys.insert(key.clone(), id);
        self.transactions.insert(
            id,
            Transaction {
                kind,
                state: State::Initial,
                peer: to,
                request,
                key,
                last_response: None,
                ack: None,
                retransmit_at: unreliable.then(|| now + t1),
                interval: t1,
                deadline: Some(now + 64 * t1),
                acked: false,
            },
        );
        Ok(id)
    }

    /// Sends the TU's response on server transaction `id`.
    pub fn send_response(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: Response,
    ) -> Result<(), SendError> {
        let timers = self.timers;
        let tx = self
            .transactions
            .get_mut(&id)
            .ok_or(SendError::UnknownTransaction)?;
        let unreliable = !tx.peer.transport.is_reliable();
        let status = response.status;
        let provisional = status < 200;
        match (tx.kind, tx.state) {
            (Kind::ServerInvite, State::Proceeding) if provisional => {}
            (Kind::ServerInvite, State::Proceeding | State::Accepted) if status < 300 => {
                if tx.state == State::Proceeding {
                    tx.deadline = Some(now + 64 * timers.t1);
                    tx.interval = timers.t1;
                    tx.retransmit_at = unreliable.then(|| now + timers.t1);
                }
                tx.state = State::Accepted;
            }
            (Kind::ServerInvite, State::Proceeding) => {
                tx.state = State::Completed;
                tx.interval = timers.t1;
                tx.retransmit_at = unreliable.then(|| now + timers.t1);
                tx.deadline = Some(now + 64 * timers.t1);
            }
            (Kind::ServerNonInvite, State::Initial | State::Proceeding) if provisional => {
                tx.state = State::Proceeding;
            }
            (Kind::ServerNonInvite, State::Initial | State::Proceeding) => {
                tx.state = State::Completed;
                tx.deadline = Some(if unreliable {
                    now + 64 * timers.t1
                } else {
                    now
                });
            }
            _ => return Err(SendError::InvalidState),
        }
        tx.last_response = Some(response.clone());
        let to = tx.peer;
        self.transmits.push_back(Transmit {
            to,
            message: Message::Response(response),
        });
        self.expire(now);
        Ok(())
    }

    /// Sends a message outside any transaction (ACK for a 2xx, stateless responses).
    pub fn send_stateless(&mut self, to: Peer, message: Message) {
        self.transmits.push_back(Transmit { to, message });
    }

    /// The request that started transaction `id`.
    pub fn request(&self, id: TransactionId) -> Option<&Request> {
        self.transactions.get(&id).map(|tx| &tx.request)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<TransactionId> = self
            .transactions
            .iter()
            .filter(|(_, tx)| tx.retransmit_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.retransmit(now, id);
        }
        self.expire(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transactions
            .values()
            .flat_map(|tx| [tx.retransmit_at, tx.deadline])
            .flatten()
            .min()
    }

    fn allocate_id(&mut self) -> TransactionId {
        self.next_id += 1;
        TransactionId(self.next_id)
    }

    fn retransmit(&mut self, now: Instant, id: TransactionId) {
        let t2 = self.timers.t2;
        let Some(tx) = self.transactions.get_mut(&id) else {
            return;
        };
        let message = match (tx.kind, tx.state) {
            (Kind::ClientInvite, State::Initial) => {
                tx.interval *= 2; // Timer A doubles without cap.
                Message::Request(tx.request.clone())
            }
            (Kind::ClientNonInvite, State::Initial) => {
                tx.interval = (tx.interval * 2).min(t2); // Timer E.
                Message::Request(tx.request.clone())
            }
            (Kind::ClientNonInvite, State::Proceeding) => {
                tx.interval = t2;
                Message::Request(tx.request.clone())
            }
            (Kind::ServerInvite, State::Completed) | (Kind::ServerInvite, State::Accepted)
                if !tx.acked =>
            {
                tx.interval = (tx.interval * 2).min(t2); // Timer G, 2xx retransmission.
                match &tx.last_response {
                    Some(r) => Message::Response(r.clone()),
                    None => {
                        tx.retransmit_at = None;
                        return;
                    }
                }
            }
            _ => {
                tx.retransmit_at = None;
                return;
            }
        };
        tx.retransmit_at = Some(now + tx.interval);
        self.transmits.push_back(Transmit {
            to: tx.peer,
            message,
        });
    }

    /// Handles every deadline due at `now`.
    fn expire(&mut self, now: Instant) {
        let due: Vec<TransactionId> = self
            .transactions
            .iter()
            .filter(|(_, tx)| tx.deadline.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(tx) = self.transactions.get(&id) else {
                continue;
            };
            match (tx.kind, tx.state) {
                (Kind::ClientInvite | Kind::ClientNonInvite, State::Initial)
                | (Kind::ClientNonInvite, State::Proceeding)
                | (Kind::ServerInvite, State::Completed) => {
                    self.events.push_back(TransactionEvent::Timeout { id });
                }
                (Kind::ServerInvite, State::Accepted) if !tx.acked => {
                    self.events.push_back(TransactionEvent::NoAck { id });
                }
                _ => {}
            }
            self.terminate(id);
        }
    }

    fn terminate(&mut self, id: TransactionId) {
        if let Some(tx) = self.transactions.remove(&id) {
            let keys = match tx.kind {
                Kind::ClientInvite | Kind::ClientNonInvite => &mut self.client_keys,
                Kind::ServerInvite | Kind::ServerNonInvite => &mut self.server_keys,
            };
            if keys.get(&tx.key) == Some(&id) {
                keys.remove(&tx.key);
            }
            self.events.push_back(TransactionEvent::Terminated { id });
        }
    }

    fn handle_response(&mut self, now: Instant, response: Response) {
        if response.headers.get_all("Via").count() != 1 {
            tracing::debug!("dropping response with other than one Via");
            return;
        }
        let (Some(via), Some(cseq)) = (response.headers.via(), response.headers.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else {
            return;
        };
        let key = format!("{branch}|{}", cseq.method);
        let Some(&id) = self.client_keys.get(&key) else {
            tracing::debug!(%key, status = response.status, "response matches no transaction");
            return;
        };
        let timers = self.timers;
        let Some(tx) = self.transactions.get_mut(&id) else {
            return;
        };
        let unreliable = !tx.peer.transport.is_reliable();
        let status = response.status;
        let report = match (tx.kind, tx.state) {
            (_, State::Initial | State::Proceeding) if status < 200 => {
                if tx.kind == Kind::ClientInvite {
                    tx.retransmit_at = None;
                    tx.deadline = None;
                } else if tx.state == State::Initial && unreliable {
                    tx.retransmit_at = Some(now + timers.t2);
                }
                tx.state = State::Proceeding;
                true
            }
            (Kind::ClientInvite, State::Initial | State::Proceeding) if status < 300 => {
                tx.state = State::Accepted;
                tx.retransmit_at = None;
                tx.deadline = Some(now + 64 * timers.t1); // Timer M.
                true
            }
            (Kind::ClientInvite, State::Accepted) => (200..300).contains(&status),
            (Kind::ClientInvite, State::Initial | State::Proceeding) => {
                let ack = ack_for_failure(&tx.request, &response);
                tx.state = State::Completed;
                tx.retransmit_at = None;
                tx.deadline = Some(if unreliable {
                    now + Duration::from_secs(32)
                } else {
                    now
                });
                self.transmits.push_back(Transmit {
                    to: tx.peer,
                    message: Message::Request(ack.clone()),
                });
                tx.ack = Some(ack);
                true
            }
            (Kind::ClientInvite, State::Completed) => {
                if let Some(ack) = &tx.ack {
                    self.transmits.push_back(Transmit {
                        to: tx.peer,
                        message: Message::Request(ack.clone()),
                    });
                }
                false
            }
            (Kind::ClientNonInvite, State::Initial | State::Proceeding) => {
                tx.state = State::Completed;
                tx.retransmit_at = None;
                tx.deadline = Some(if unreliable { now + timers.t4 } else { now }); // Timer K.
                true
            }
            _ => false,
        };
        if report {
            self.events
                .push_back(TransactionEvent::Response { id, response });
        }
        self.expire(now);
    }

    fn handle_request(&mut self, now: Instant, from: Peer, mut request: Request) {
        let Some(mut via) = request.headers.via() else {
            return;
        };
        stamp_via(&mut via, from);
        request.headers.set_via(&via);
        let destination = response_destination(&via, from);
        match request.method {
            Method::Ack => self.handle_ack(now, from, request, &via),
            Method::Cancel => self.handle_cancel(now, destination, request, &via),
            _ => {
                let key = server_key(&request, &via, &request.method);
                if let Some(&id) = self.server_keys.get(&key) {
                    self.absorb_retransmission(id);
                    return;
                }
                let kind = if request.method == Method::Invite {
                    Kind::ServerInvite
                } else {
                    Kind::ServerNonInvite
                };
                let id = self.create_server(kind, destination, request.clone(), key);
                self.events
                    .push_back(TransactionEvent::Request { id, from, request });
                if kind == Kind::ServerInvite {
                    let trying = self
                        .transactions
                        .get(&id)
                        .map(|tx| Response::from_request(&tx.request, 100, "Trying", None));
                    if let Some(trying) = trying {
                        // The transaction was just created in Proceeding: 1xx is accepted.
                        let _ = self.send_response(now, id, trying);
                    }
                }
            }
        }
    }

    fn create_server(
        &mut self,
        kind: Kind,
        peer: Peer,
        request: Request,
        key: String,
    ) -> TransactionId {
        let id = self.allocate_id();
        self.server_keys.insert(key.clone(), id);
        self.transactions.insert(
            id,
            Transaction {
                kind,
                state: if kind == Kind::ServerInvite {
                    State::Proceeding
                } else {
                    State::Initial
                },
                peer,
                request,
                key,
                last_response: None,
                ack: None,
                retransmit_at: None,
                interval: self.timers.t1,
                deadline: None,
                acked: false,
            },
        );
        id
    }

    fn absorb_retransmission(&mut self, id: TransactionId) {
        let Some(tx) = self.transactions.get(&id) else {
            return;
        };
        // Absorbed silently in Trying (no response yet) and Accepted (2xx timer runs).
        let resend = matches!(tx.state, State::Proceeding | State::Completed);
        if let (true, Some(response)) = (resend, &tx.last_response) {
            self.transmits.push_back(Transmit {
                to: tx.peer,
                message: Message::Response(response.clone()),
            });
        }
    }

    fn handle_ack(&mut self, now: Instant, from: Peer, request: Request, via: &Via) {
        let key = server_key(&request, via, &Method::Invite);
        if let Some(&id) = self.server_keys.get(&key) {
            if let Some(tx) = self.transactions.get_mut(&id) {
                if tx.state == State::Completed {
                    tx.state = State::Confirmed;
                    tx.retransmit_at = None;
                    let reliable = tx.peer.transport.is_reliable();
                    tx.deadline = Some(if reliable { now } else { now + self.timers.t4 }); // I
                    self.expire(now);
                    return;
                }
                if tx.state != State::Accepted {
                    return;
                }
            }
        }
        // ACK for a 2xx: a new transaction; match the INVITE by dialog and CSeq.
        let call_id = request.headers.call_id();
        let seq = request.headers.cseq().map(|c| c.seq);
        let from_tag = request
            .headers
            .from()
            .and_then(|f| f.tag().map(str::to_owned));
        let matched = self.transactions.iter_mut().find(|(_, tx)| {
            tx.kind == Kind::ServerInvite
                && tx.state == State::Accepted
                && tx.request.headers.call_id() == call_id
                && tx.request.headers.cseq().map(|c| c.seq) == seq
                && tx
                    .request
                    .headers
                    .from()
                    .and_then(|f| f.tag().map(str::to_owned))
                    == from_tag
        });
        match matched {
            Some((_, tx)) if tx.acked => {}
            Some((&id, tx)) => {
                tx.acked = true;
                tx.retransmit_at = None;
                self.events.push_back(TransactionEvent::Ack {
                    invite: Some(id),
                    from,
                    request,
                });
            }
            None => self.events.push_back(TransactionEvent::Ack {
                invite: None,
                from,
                request,
            }),
        }
    }

    fn handle_cancel(&mut self, now: Instant, destination: Peer, request: Request, via: &Via) {
        let key = server_key(&request, via, &Method::Cancel);
        if let Some(&id) = self.server_keys.get(&key) {
            self.absorb_retransmission(id);
            return;
        }
        let invite = self
            .server_keys
            .get(&server_key(&request, via, &Method::Invite))
            .copied();
        let id = self.create_server(Kind::ServerNonInvite, destination, request.clone(), key);
        let status = if invite.is_some() { 200 } else { 481 };
        let response = Response::from_request(&request, status, "", None);
        // The transaction was just created in Trying: a final response is accepted.
        let _ = self.send_response(now, id, response);
        if let Some(invite) = invite {
            let proceeding = self
                .transactions
                .get(&invite)
                .is_some_and(|tx| tx.state == State::Proceeding);
            if proceeding {
                self.events.push_back(TransactionEvent::Cancelled {
                    invite,
                    cancel: request,
                });
            }
        }
    }

    fn send_response_stateless(&mut self, from: Peer, response: Response) {
        let to = match response.headers.via() {
            Some(mut via) => {
                stamp_via(&mut via, from);
                response_destination(&via, from)
            }
            None => from,
        };
        self.transmits.push_back(Transmit {
            to,
            message: Message::Response(response),
        });
    }
}

/// RFC 3261 §17.2.3 key: branch + sent-by + method (ACK maps to INVITE). Requests without
/// the magic cookie fall back to Call-ID, From tag, CSeq number and the Via.
fn server_key(request: &Request, via: &Via, method: &Method) -> String {
    let sent_by = format!("{}:{}", via.host, via.port.unwrap_or(0));
    match via.branch() {
        Some(branch) if branch.starts_with(BRANCH_MAGIC_COOKIE) => {
            format!("{branch}|{sent_by}|{method}")
        }
        _ => {
            let h = &request.headers;
            format!(
                "legacy|{}|{}|{}|{sent_by}|{method}",
                h.call_id().unwrap_or(""),
                h.from()
                    .and_then(|f| f.tag().map(str::to_owned))
                    .unwrap_or_default(),
                h.cseq().map(|c| c.seq).unwrap_or(0),
            )
        }
    }
}

/// Adds `received` when sent-by differs from the source, and fills `rport` (RFC 3581).
fn stamp_via(via: &mut Via, from: Peer) {
    let source_ip = from.addr.ip().to_string();
    let sent_by_ip: Option<IpAddr> = via.host.parse().ok();
    if via.rport().is_some() {
        via.params.set("rport", Some(&from.addr.port().to_string()));
        via.params.set("received", Some(&source_ip));
    } else if sent_by_ip != Some(from.addr.ip()) {
        via.params.set("received", Some(&source_ip));
    }
}

/// Where responses go (RFC 3261 §18.2.2, RFC 3581), given the stamped top Via.
fn response_destination(via: &Via, from: Peer) -> Peer {
    if from.transport.is_reliable() || via.rport().is_some() {
        return from;
    }
    let ip = via
        .received()
        .and_then(|r| r.parse().ok())
        .or_else(|| via.host.parse().ok())
        .unwrap_or(from.addr.ip());
    Peer {
        addr: SocketAddr::new(ip, via.port.unwrap_or(5060)),
        transport: from.transport,
    }
}

/// The ACK a client INVITE transaction sends for a 300–699 (RFC 3261 §17.1.1.3).
fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(via) = invite.headers.get("Via") {
        ack.headers.push("Via", via);
    }
    for route in invite.headers.get_all("Route") {
        ack.headers.push("Route", route);
    }
    ack.headers.push("Max-Forwards", "70");
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            ack.headers.push(name, v);
        }
    }
    if let Some(to) = response.headers.get("To") {
        ack.headers.push("To", to);
    }
    let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or(0);
    ack.headers.push("CSeq", format!("{seq} ACK"));
    ack
}

#[cfg(test)]
mod tests;
