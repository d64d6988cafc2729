//! One call: its INVITE transactions, dialog, offer/answer and media.

use std::time::{Duration, Instant};

use homeagent_media::Direction;
use homeagent_media::sdp::{self, LocalIce, LocalMedia, LocalSrtp, Negotiated, SessionDescription};
use homeagent_sip::auth;
use homeagent_sip::dialog::Dialog;
use homeagent_sip::message::{Message, Method, NameAddr, Request, Response, Uri};
use homeagent_sip::transaction::{Peer, TransactionId, Transport};

use crate::agent::auto_answer_request;
use crate::config::{AnswerMode, SrtpPolicy};
use crate::event::{CallId, EndReason, MediaCommand, PhoneEvent};
use crate::phone::Phone;
use crate::pii::Pii;

/// How many times an INVITE is re-sent with credentials before giving up.
const MAX_AUTH_ATTEMPTS: u32 = 2;
/// How long a call waits for the final answer to its CANCEL/BYE before it is forgotten.
const LINGER: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outgoing: INVITE sent, no final response yet.
    Calling,
    /// Incoming: ringing here, waiting for the user.
    Ringing,
    /// Incoming: 200 sent, waiting for the ACK.
    Answered,
    /// Up.
    Confirmed,
    /// We sent CANCEL or BYE and reported the end; the transactions finish in the background.
    Ending,
    Finished,
}

/// Why a call could not be placed at all.
#[derive(Debug)]
pub(crate) struct DialFailure {
    reason: EndReason,
    detail: String,
}

impl DialFailure {
    pub(crate) fn into_event(self, call: CallId) -> PhoneEvent {
        PhoneEvent::Ended {
            call,
            reason: self.reason,
            code: None,
            detail: self.detail,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Call {
    id: CallId,
    state: State,
    outgoing: bool,
    /// Where out-of-dialog requests of this call go (proxy, or the callee directly).
    next_hop: Peer,
    /// The INVITE we sent (outgoing) or received (incoming), as last sent/received.
    invite: Request,
    invite_transaction: TransactionId,
    dialog: Option<Dialog>,
    local_tag: String,
    /// ACK of the 2xx, kept to answer retransmitted 2xx.
    ack: Option<Request>,
    auth_attempts: u32,
    provisional_seen: bool,
    cancel_wanted: Option<EndReason>,
    cancel_sent: bool,
    local_port: u16,
    media: LocalMedia,
    /// Our last offer, until its answer arrives.
    pending_offer: Option<SessionDescription>,
    /// Transaction of our re-INVITE in progress (hold/resume).
    reinvite: Option<TransactionId>,
    /// Our CANCEL and BYE transactions.
    teardown: Vec<TransactionId>,
    /// Blind transfer (RFC 3515): our REFER's transaction until its final answer, and the
    /// target until the transferee's NOTIFY reports how the transfer went.
    refer: Option<TransactionId>,
    transfer_target: Option<String>,
    negotiated: Option<Negotiated>,
    media_started: bool,
    local_hold: bool,
    /// Hold or resume asked while a re-INVITE was in progress.
    queued_hold: Option<bool>,
    /// An ICE restart asked while a re-INVITE was in progress.
    queued_ice_restart: bool,
    /// The re-INVITE in progress restarts ICE (not a hold or resume).
    ice_restart_sent: bool,
    remote_hold: bool,
    no_answer_at: Option<Instant>,
    /// Incoming from the platform, which asked to be answered after a delay.
    auto_answer_at: Option<Instant>,
    linger_until: Option<Instant>,
    end_reported: bool,
}

impl Call {
    // ---- outgoing ----

    pub(crate) fn dial(
        phone: &mut Phone,
        id: CallId,
        target: &str,
        next_hop: Option<Peer>,
        now: Instant,
    ) -> Result<Call, DialFailure> {
        let uri = target_uri(phone, target).ok_or_else(|| DialFailure {
            reason: EndReason::Failed,
            detail: format!("{target:?} is not a SIP URI"),
        })?;
        let next_hop = phone
            .config
            .account
            .as_ref()
            .map(|a| a.proxy)
            .or(next_hop)
            .ok_or_else(|| DialFailure {
                reason: EndReason::Failed,
                detail: format!(
                    "no route to {}: give a reachable host or configure a registrar",
                    Pii(&uri)
                ),
            })?;
        let local_port = phone.media_ports.pop_front().ok_or_else(|| DialFailure {
            reason: EndReason::Failed,
            detail: "no free RTP port".to_owned(),
        })?;
        let media = local_media(phone, local_port);
        let offer = sdp::create_offer(&media);
        let local_tag = phone.rng.token();
        let mut from = phone.local_aor();
        from.set_tag(&local_tag);
        let to = NameAddr::new(uri.clone());
        let call_id = phone.new_call_id_token();
        let mut invite = phone.new_request(
            Method::Invite,
            uri,
            from,
            to,
            &call_id,
            1,
            next_hop.transport,
        );
        invite
            .headers
            .push("Contact", phone.contact(next_hop.transport).to_string());
        phone.add_capabilities(&mut invite.headers);
        invite.headers.remove("Server");
        set_sdp(&mut invite, &offer);
        tracing::info!(call = %id, to = %Pii(&invite.uri), "calling");
        let invite_transaction = phone.send_request(next_hop, invite.clone());
        phone.emit(PhoneEvent::Calling {
            call: id,
            to: target.to_owned(),
        });
        let mut call = Call::new(
            id,
            next_hop,
            invite,
            invite_transaction,
            local_tag,
            local_port,
            media,
        );
        call.outgoing = true;
        call.state = State::Calling;
        call.pending_offer = Some(offer);
        call.no_answer_at = Some(now + phone.config.no_answer_timeout);
        Ok(call)
    }

    /// A call in its first state (incoming, ringing); `dial` adjusts it for outgoing calls.
    fn new(
        id: CallId,
        next_hop: Peer,
        invite: Request,
        invite_transaction: TransactionId,
        local_tag: String,
        local_port: u16,
        media: LocalMedia,
    ) -> Call {
        Call {
            id,
            state: State::Ringing,
            outgoing: false,
            next_hop,
            invite,
            invite_transaction,
            dialog: None,
            local_tag,
            ack: None,
            auth_attempts: 0,
            provisional_seen: false,
            cancel_wanted: None,
            cancel_sent: false,
            local_port,
            media,
            pending_offer: None,
            reinvite: None,
            teardown: Vec::new(),
            refer: None,
            transfer_target: None,
            negotiated: None,
            media_started: false,
            local_hold: false,
            queued_hold: None,
            queued_ice_restart: false,
            ice_restart_sent: false,
            remote_hold: false,
            no_answer_at: None,
            auto_answer_at: None,
            linger_until: None,
            end_reported: false,
        }
    }

    pub(crate) fn handle_response(
        &mut self,
        phone: &mut Phone,
        id: TransactionId,
        response: Response,
    ) {
        if Some(id) == self.reinvite {
            self.reinvite_response(phone, response);
            return;
        }
        if Some(id) == self.refer {
            self.refer_response(phone, &response);
            return;
        }
        if id != self.invite_transaction {
            // Our BYE answered: the call is over. (A CANCEL's answer changes nothing: the
            // INVITE's own final response, 487 or a crossing 200, settles the call.)
            let bye = response
                .headers
                .cseq()
                .is_some_and(|c| c.method == Method::Bye);
            if bye && self.state == State::Ending && response.status >= 200 {
                self.state = State::Finished;
            }
            return;
        }
        match response.status {
            100 => {}
            101..=199 => {
                self.provisional_seen = true;
                if self.state == State::Calling
                    && matches!(response.status, 180 | 183)
                    && self.cancel_wanted.is_none()
                {
                    phone.emit(PhoneEvent::Ringing { call: self.id });
                }
                if self.cancel_wanted.is_some() {
                    self.send_cancel(phone);
                }
            }
            200..=299 => self.invite_accepted(phone, &response),
            401 | 407 if self.cancel_wanted.is_none() => self.authenticate(phone, &response),
            status => {
                let reason = match (self.cancel_wanted, status) {
                    (Some(reason), 487) => reason,
                    (_, 486 | 600) => EndReason::Busy,
                    (_, 401 | 403 | 407) => EndReason::AuthFailed,
                    (_, 408) => EndReason::Timeout,
                    (_, 488 | 606) => EndReason::MediaFailed,
                    _ => EndReason::Rejected,
                };
                self.end(phone, reason, Some(status), response.reason.clone());
                self.state = State::Finished;
            }
        }
    }

    fn invite_accepted(&mut self, phone: &mut Phone, response: &Response) {
        if let Some(ack) = &self.ack {
            // A retransmitted 2xx: our ACK was lost.
            phone
                .transactions
                .send_stateless(self.target_peer(), Message::Request(ack.clone()));
            return;
        }
        let dialog = match Dialog::uac(&self.invite, response) {
            Ok(dialog) => dialog,
            Err(error) => {
                tracing::warn!(call = %self.id, %error, "2xx without a usable dialog");
                self.end(
                    phone,
                    EndReason::Failed,
                    Some(response.status),
                    format!("bad 2xx: {error}"),
                );
                self.state = State::Finished;
                return;
            }
        };
        self.dialog = Some(dialog);
        self.send_ack(phone);
        self.no_answer_at = None;
        if self.cancel_wanted.is_some() {
            // We hung up while the callee answered: confirm then leave at once.
            self.send_bye(phone);
            return;
        }
        let negotiated = match (&self.pending_offer, body_sdp(&response.body)) {
            (Some(offer), Some(answer)) => {
                sdp::apply_answer(offer, &answer).map_err(|e| e.to_string())
            }
            _ => Err("the 2xx carries no SDP answer".to_owned()),
        };
        self.pending_offer = None;
        match negotiated {
            Ok(negotiated) => {
                self.state = State::Confirmed;
                self.start_media(phone, negotiated);
            }
            Err(detail) => {
                self.send_bye(phone);
                self.end(phone, EndReason::MediaFailed, None, detail);
            }
        }
    }

    fn authenticate(&mut self, phone: &mut Phone, response: &Response) {
        let Some(credentials) = phone.config.credentials.clone() else {
            self.end(
                phone,
                EndReason::AuthFailed,
                Some(response.status),
                "the callee asks for credentials and none are configured".into(),
            );
            self.state = State::Finished;
            return;
        };
        self.auth_attempts += 1;
        let challenge = auth::Challenge::from_response(response)
            .filter(|_| self.auth_attempts <= MAX_AUTH_ATTEMPTS);
        let cnonce = phone.rng.token();
        let uri = self.invite.uri.to_string();
        let credentials = challenge.and_then(|(challenge, header)| {
            let answer = auth::DigestAnswer {
                method: &Method::Invite,
                uri: &uri,
                username: &credentials.user,
                password: &credentials.password,
                cnonce: &cnonce,
                nonce_count: 1,
            };
            challenge.answer(&answer).ok().map(|value| (header, value))
        });
        let Some((authorization, credentials)) = credentials else {
            self.end(
                phone,
                EndReason::AuthFailed,
                Some(response.status),
                response.reason.clone(),
            );
            self.state = State::Finished;
            return;
        };
        let mut invite = self.invite.clone();
        invite.headers.remove("Authorization");
        invite.headers.remove("Proxy-Authorization");
        invite.headers.push(authorization, credentials);
        let cseq = invite.headers.cseq().map_or(1, |c| c.seq) + 1;
        invite.headers.set("CSeq", format!("{cseq} INVITE"));
        let via = phone.new_via(self.next_hop.transport);
        invite.headers.set_via(&via);
        self.invite = invite.clone();
        self.invite_transaction = phone.send_request(self.next_hop, invite);
    }

    fn send_cancel(&mut self, phone: &mut Phone) {
        if self.cancel_sent {
            return;
        }
        self.cancel_sent = true;
        let mut cancel = Request::new(Method::Cancel, self.invite.uri.clone());
        for name in ["Via", "From", "To", "Call-ID", "Route"] {
            for value in self
                .invite
                .headers
                .get_all(name)
                .map(str::to_owned)
                .collect::<Vec<_>>()
            {
                cancel.headers.push(name, value);
            }
        }
        if let Some(cseq) = self.invite.headers.cseq() {
            cancel.headers.push("CSeq", format!("{} CANCEL", cseq.seq));
        }
        cancel.headers.push("Max-Forwards", "70");
        let id = phone.send_request(self.next_hop, cancel);
        self.teardown.push(id);
    }

    fn send_ack(&mut self, phone: &mut Phone) {
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        let via = phone.new_via(self.next_hop.transport);
        let cseq = self.invite.headers.cseq().map_or(1, |c| c.seq);
        let mut ack = dialog.ack_for_2xx(cseq, &via);
        for name in ["Authorization", "Proxy-Authorization"] {
            if let Some(value) = self.invite.headers.get(name) {
                ack.headers.push(name, value.to_owned());
            }
        }
        phone
            .transactions
            .send_stateless(self.target_peer(), Message::Request(ack.clone()));
        self.ack = Some(ack);
    }

    // ---- incoming ----

    pub(crate) fn incoming(
        phone: &mut Phone,
        id: CallId,
        transaction: TransactionId,
        invite: Request,
        from: Peer,
    ) -> Option<Call> {
        let Some(local_port) = phone.media_ports.pop_front() else {
            phone.respond(transaction, &invite, 503, None);
            return None;
        };
        let local_tag = phone.rng.token();
        let media = local_media(phone, local_port);
        let caller = invite
            .headers
            .from()
            .map(|f| f.uri.to_string())
            .unwrap_or_default();
        let callee = invite
            .headers
            .to()
            .map(|t| t.uri.to_string())
            .unwrap_or_default();
        let dialog = Dialog::uas(&invite, &local_tag, Some(phone.contact(from.transport))).ok();
        let mut call = Call::new(id, from, invite, transaction, local_tag, local_port, media);
        call.dialog = dialog;
        if call.dialog.is_none() {
            phone.respond(transaction, &call.invite, 400, None);
            phone.media_ports.push_back(local_port);
            return None;
        }
        tracing::info!(call = %id, from = %Pii(&caller), "incoming call");
        let headers = call
            .invite
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        phone.emit(PhoneEvent::Incoming {
            call: id,
            from: caller,
            to: callee,
            headers,
        });
        // Check the offer now, so an impossible call is refused before it rings.
        if !call.invite.body.is_empty() {
            let offer = body_sdp(&call.invite.body);
            let answer = offer.as_ref().map(|o| sdp::create_answer(o, &call.media));
            match answer {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    call.reject(
                        phone,
                        error.sip_status(),
                        EndReason::MediaFailed,
                        error.to_string(),
                    );
                    return Some(call);
                }
                None => {
                    call.reject(
                        phone,
                        400,
                        EndReason::MediaFailed,
                        "unreadable SDP offer".into(),
                    );
                    return Some(call);
                }
            }
        }
        let acd = &phone.config.acd;
        if let Some(status) = phone.agent.refusal(acd.is_platform(from.addr)) {
            let detail = format!("agent {}", phone.agent.state().as_str());
            call.reject(phone, status, EndReason::Declined, detail);
            return Some(call);
        }
        // Auto-answer only for the platform: when its INVITE asks, or for every call with
        // forced delivery.
        let auto_after = if acd.is_platform(from.addr) {
            auto_answer_request(&call.invite.headers)
                .or(acd.auto_answer_all.then_some(Duration::ZERO))
        } else {
            None
        };
        match auto_after {
            Some(delay) if delay.is_zero() => {
                call.answer(phone, true);
                return Some(call);
            }
            Some(delay) => {
                call.send_ringing(phone);
                call.auto_answer_at = Some(phone.now + delay);
                return Some(call);
            }
            None => {}
        }
        match phone.config.answer {
            AnswerMode::Auto => call.answer(phone, true),
            AnswerMode::Reject => call.reject(
                phone,
                486,
                EndReason::Declined,
                "rejected by configuration".into(),
            ),
            AnswerMode::Manual => call.send_ringing(phone),
        }
        Some(call)
    }

    fn send_ringing(&mut self, phone: &mut Phone) {
        let mut ringing =
            Response::from_request(&self.invite, 180, "Ringing", Some(&self.local_tag));
        ringing.headers.push(
            "Contact",
            phone.contact(self.next_hop.transport).to_string(),
        );
        phone.send_response(self.invite_transaction, ringing);
    }

    pub(crate) fn answer(&mut self, phone: &mut Phone, auto: bool) {
        if self.state != State::Ringing {
            return;
        }
        let offer = body_sdp(&self.invite.body);
        let (body, negotiated) = match offer {
            Some(offer) => match sdp::create_answer(&offer, &self.media) {
                Ok((answer, negotiated)) => (answer, Some(negotiated)),
                Err(error) => {
                    self.reject(
                        phone,
                        error.sip_status(),
                        EndReason::MediaFailed,
                        error.to_string(),
                    );
                    return;
                }
            },
            // Late offer: we offer in the 2xx, the answer comes in the ACK.
            None => {
                let offer = sdp::create_offer(&self.media);
                self.pending_offer = Some(offer.clone());
                (offer, None)
            }
        };
        let mut ok = Response::from_request(&self.invite, 200, "OK", Some(&self.local_tag));
        ok.headers.push(
            "Contact",
            phone.contact(self.next_hop.transport).to_string(),
        );
        phone.add_capabilities(&mut ok.headers);
        set_sdp_response(&mut ok, &body);
        phone.send_response(self.invite_transaction, ok);
        self.state = State::Answered;
        phone.emit(PhoneEvent::Answered {
            call: self.id,
            auto,
        });
        if let Some(negotiated) = negotiated {
            self.start_media(phone, negotiated);
        }
    }

    pub(crate) fn decline(&mut self, phone: &mut Phone) {
        if self.state == State::Ringing {
            self.reject(phone, 486, EndReason::Declined, "declined".into());
        }
    }

    fn reject(&mut self, phone: &mut Phone, status: u16, reason: EndReason, detail: String) {
        let invite = self.invite.clone();
        phone.respond(
            self.invite_transaction,
            &invite,
            status,
            Some(&self.local_tag.clone()),
        );
        self.end(phone, reason, Some(status), detail);
        self.state = State::Finished;
    }

    pub(crate) fn handle_ack(&mut self, phone: &mut Phone, ack: &Request) {
        if self.state != State::Answered {
            return;
        }
        self.state = State::Confirmed;
        if let Some(offer) = self.pending_offer.take() {
            match body_sdp(&ack.body).map(|answer| sdp::apply_answer(&offer, &answer)) {
                Some(Ok(negotiated)) => self.start_media(phone, negotiated),
                _ => {
                    self.send_bye(phone);
                    self.end(
                        phone,
                        EndReason::MediaFailed,
                        None,
                        "no usable SDP answer in the ACK".into(),
                    );
                    return;
                }
            }
        }
        if let Some(negotiated) = &self.negotiated {
            phone.emit(PhoneEvent::Established {
                call: self.id,
                codec: negotiated.kind,
                remote_rtp: negotiated.remote_rtp,
                srtp: negotiated.srtp.as_ref().map(|keys| keys.suite),
            });
        }
        if let Some(hold) = self.queued_hold.take() {
            self.set_hold(phone, hold);
        }
        if std::mem::take(&mut self.queued_ice_restart) {
            self.restart_ice(phone);
        }
    }

    pub(crate) fn handle_cancel(&mut self, phone: &mut Phone) {
        if self.state == State::Ringing {
            let invite = self.invite.clone();
            phone.respond(
                self.invite_transaction,
                &invite,
                487,
                Some(&self.local_tag.clone()),
            );
            self.end(
                phone,
                EndReason::RemoteCancelled,
                Some(487),
                "the caller hung up".into(),
            );
            self.state = State::Finished;
        }
    }

    pub(crate) fn handle_no_ack(&mut self, phone: &mut Phone) {
        if self.state == State::Answered {
            self.send_bye(phone);
            self.end(
                phone,
                EndReason::Timeout,
                None,
                "no ACK for our 200 OK".into(),
            );
        }
    }

    // ---- in dialog ----

    pub(crate) fn handle_request(
        &mut self,
        phone: &mut Phone,
        id: TransactionId,
        request: Request,
    ) {
        if let Some(dialog) = &mut self.dialog {
            if let Err(error) = dialog.receive_request(&request) {
                tracing::debug!(call = %self.id, %error, "in-dialog request refused");
                phone.respond(id, &request, 500, Some(&self.local_tag.clone()));
                return;
            }
        }
        match request.method {
            Method::Bye => {
                let tag = self.local_tag.clone();
                phone.respond(id, &request, 200, Some(&tag));
                if self.state == State::Ending {
                    self.state = State::Finished;
                    return;
                }
                self.end(
                    phone,
                    EndReason::RemoteHangup,
                    None,
                    "the other side hung up".into(),
                );
                self.state = State::Finished;
            }
            Method::Invite => self.remote_reinvite(phone, id, &request),
            Method::Notify if self.transfer_target.is_some() => {
                let tag = self.local_tag.clone();
                phone.respond(id, &request, 200, Some(&tag));
                self.transfer_progress(phone, &request);
            }
            Method::Options | Method::Info | Method::Update | Method::Notify => {
                let tag = self.local_tag.clone();
                phone.respond(
                    id,
                    &request,
                    if request.method == Method::Update {
                        501
                    } else {
                        200
                    },
                    Some(&tag),
                );
            }
            Method::Ack => {}
            _ => {
                let tag = self.local_tag.clone();
                phone.respond(id, &request, 405, Some(&tag));
            }
        }
    }

    fn remote_reinvite(&mut self, phone: &mut Phone, id: TransactionId, request: &Request) {
        let tag = self.local_tag.clone();
        if self.reinvite.is_some() {
            phone.respond(id, request, 491, Some(&tag));
            return;
        }
        let Some(offer) = body_sdp(&request.body) else {
            phone.respond(id, request, 488, Some(&tag));
            return;
        };
        self.media.session_version += 1;
        self.media.direction = if self.local_hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        // The peer restarts ICE (new ufrag): we answer with new credentials too (RFC 8839).
        let known_ufrag = self
            .negotiated
            .as_ref()
            .and_then(|n| n.ice.as_ref())
            .map(|ice| ice.remote_ufrag.as_str());
        if let (Some(known), Some(offered)) = (known_ufrag, sdp::ice_ufrag(&offer))
            && known != offered
        {
            self.renew_ice_credentials(phone);
        }
        match sdp::create_answer(&offer, &self.media) {
            Ok((answer, negotiated)) => {
                let mut ok = Response::from_request(request, 200, "OK", Some(&tag));
                ok.headers.push(
                    "Contact",
                    phone.contact(self.next_hop.transport).to_string(),
                );
                set_sdp_response(&mut ok, &answer);
                phone.send_response(id, ok);
                self.update_media(phone, negotiated);
            }
            Err(error) => phone.respond(id, request, error.sip_status(), Some(&tag)),
        }
    }

    pub(crate) fn set_hold(&mut self, phone: &mut Phone, hold: bool) {
        if self.reinvite.is_some() || self.state == State::Answered {
            // One offer/answer at a time: apply this once the current one completes (the
            // re-INVITE's answer, or the ACK of our 200).
            self.queued_hold = Some(hold);
            return;
        }
        if self.state != State::Confirmed || self.local_hold == hold || self.dialog.is_none() {
            return;
        }
        self.local_hold = hold;
        self.media.direction = match (hold, self.remote_hold) {
            (true, _) => Direction::SendOnly,
            (false, _) => Direction::SendRecv,
        };
        self.send_reoffer(phone);
        if let (true, Some(negotiated)) = (hold && self.media_started, &self.negotiated) {
            // Cut the agent's microphone at once, not when the peer answers.
            let media = Negotiated {
                direction: Direction::Inactive,
                ..negotiated.clone()
            };
            phone.media(MediaCommand::Update {
                call: self.id,
                media,
            });
        }
        phone.emit(PhoneEvent::Hold {
            call: self.id,
            local: true,
            on: hold,
        });
    }

    /// A re-INVITE with a new offer from `self.media` (its session version bumped).
    fn send_reoffer(&mut self, phone: &mut Phone) {
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        self.media.session_version += 1;
        let offer = sdp::create_offer(&self.media);
        let via = phone.new_via(self.next_hop.transport);
        let mut reinvite = dialog.request(Method::Invite, &via);
        reinvite.headers.push(
            "Contact",
            phone.contact(self.next_hop.transport).to_string(),
        );
        reinvite.headers.set("Max-Forwards", "70");
        set_sdp(&mut reinvite, &offer);
        self.pending_offer = Some(offer);
        let peer = self.target_peer();
        self.reinvite = Some(phone.send_request(peer, reinvite));
    }

    /// ICE restart (RFC 8445 §9) after a network change: a re-offer with new credentials and
    /// the candidates of now; DTLS and its keys stay. Calls without ICE are left alone.
    pub(crate) fn restart_ice(&mut self, phone: &mut Phone) {
        let has_ice = self.negotiated.as_ref().is_some_and(|n| n.ice.is_some());
        if !has_ice || self.media.ice.is_none() {
            return;
        }
        if self.reinvite.is_some() || self.state == State::Answered {
            self.queued_ice_restart = true;
            return;
        }
        if self.state != State::Confirmed {
            return;
        }
        self.renew_ice_credentials(phone);
        tracing::info!(call = %self.id, "ICE restart");
        self.ice_restart_sent = true;
        self.send_reoffer(phone);
    }

    /// New ICE credentials and candidates for our next offer or answer.
    fn renew_ice_credentials(&mut self, phone: &mut Phone) {
        let Some(old) = self.media.ice.take() else {
            return;
        };
        let fresh = local_ice(phone, self.local_port, old.fingerprint.clone());
        self.media.ice = Some(LocalIce {
            ufrag: fresh.ufrag,
            pwd: fresh.pwd,
            // The port's relay, if any, went to the media task with its socket.
            candidates: fresh
                .candidates
                .into_iter()
                .chain(
                    old.candidates
                        .into_iter()
                        .filter(|c| c.contains(" typ relay")),
                )
                .collect(),
            ..old
        });
        self.media.addr = local_media_addr(phone);
    }

    /// Once ICE/DTLS is negotiated, our re-offers keep it: the same DTLS role, the same mid.
    fn remember_ice(&mut self, negotiated: &Negotiated) {
        if let (Some(ice), Some(local)) = (&negotiated.ice, self.media.ice.as_mut()) {
            local.offer = true;
            local.dtls_client = Some(ice.dtls_client);
            local.mid = ice.mid.clone();
        }
    }

    fn reinvite_response(&mut self, phone: &mut Phone, response: Response) {
        if response.status < 200 {
            return;
        }
        self.reinvite = None;
        let offer = self.pending_offer.take();
        let queued_hold = self.queued_hold.take();
        let ice_restart = std::mem::take(&mut self.ice_restart_sent);
        if (200..300).contains(&response.status) {
            if let Some(dialog) = &mut self.dialog {
                let via = phone.new_via(self.next_hop.transport);
                let cseq = response.headers.cseq().map_or(1, |c| c.seq);
                let ack = dialog.ack_for_2xx(cseq, &via);
                let peer = self.target_peer();
                phone
                    .transactions
                    .send_stateless(peer, Message::Request(ack));
            }
            if let (Some(offer), Some(answer)) = (offer, body_sdp(&response.body)) {
                if let Ok(negotiated) = sdp::apply_answer(&offer, &answer) {
                    self.update_media(phone, negotiated);
                }
            }
        } else if ice_restart {
            // The media keeps the pair it had, with the credentials the peer knows.
            tracing::warn!(call = %self.id, status = response.status, "ICE restart refused");
            if let (Some(local), Some(ice)) = (
                self.media.ice.as_mut(),
                self.negotiated.as_ref().and_then(|n| n.ice.as_ref()),
            ) {
                local.ufrag = ice.local_ufrag.clone();
                local.pwd = ice.local_pwd.clone();
            }
        } else {
            tracing::warn!(call = %self.id, status = response.status, "hold/resume refused");
            self.local_hold = !self.local_hold;
            phone.emit(PhoneEvent::Hold {
                call: self.id,
                local: true,
                on: self.local_hold,
            });
        }
        if let Some(hold) = queued_hold {
            self.set_hold(phone, hold);
        }
        if std::mem::take(&mut self.queued_ice_restart) {
            self.restart_ice(phone);
        }
    }

    pub(crate) fn hang_up(&mut self, phone: &mut Phone) {
        match self.state {
            State::Calling => {
                self.cancel_wanted = Some(EndReason::Cancelled);
                if self.provisional_seen {
                    self.send_cancel(phone);
                }
                self.end(
                    phone,
                    EndReason::Cancelled,
                    None,
                    "cancelled before answer".into(),
                );
            }
            State::Ringing => self.reject(phone, 486, EndReason::Declined, "declined".into()),
            State::Answered | State::Confirmed => {
                self.send_bye(phone);
                self.end(phone, EndReason::LocalHangup, None, "hung up".into());
            }
            State::Ending | State::Finished => {}
        }
    }

    fn send_bye(&mut self, phone: &mut Phone) {
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        let via = phone.new_via(self.next_hop.transport);
        let mut bye = dialog.request(Method::Bye, &via);
        bye.headers.set("Max-Forwards", "70");
        let peer = self.target_peer();
        let id = phone.send_request(peer, bye);
        self.teardown.push(id);
        self.state = State::Ending;
    }

    /// Blind transfer: asks the other party (REFER) to call `target` instead; we hang up once
    /// it reports the new call answered.
    pub(crate) fn transfer(&mut self, phone: &mut Phone, target: &str) {
        match target_uri(phone, target) {
            Some(mut uri) => {
                // The other party calls the Refer-To itself, without our outbound proxy: a
                // number completed with the registrar's host needs the registrar's port too.
                if let Some(account) = &phone.config.account {
                    with_registrar_port(&mut uri, &account.registrar);
                }
                self.refer(phone, uri.to_string(), uri.to_string());
            }
            None => self.refuse_transfer(phone, format!("{target:?} is not a SIP URI")),
        }
    }

    /// Attended transfer (RFC 5589 §7): `consultation` is our connected call with the target;
    /// the other party is asked to call it with `Replaces` (RFC 3891), which takes our place in
    /// that call.
    pub(crate) fn attended_transfer(&mut self, phone: &mut Phone, consultation: Option<Replaces>) {
        match consultation {
            Some(replaces) => {
                let shown = replaces.target.clone();
                self.refer(phone, replaces.refer_to(), shown);
            }
            None => self.refuse_transfer(phone, "the consultation call is not connected".into()),
        }
    }

    /// What another call's attended transfer needs of this one, when it is connected.
    pub(crate) fn replaces(&self) -> Option<Replaces> {
        let dialog = self
            .dialog
            .as_ref()
            .filter(|_| self.state == State::Confirmed)?;
        Some(Replaces {
            target: dialog.remote_target.to_string(),
            call_id: dialog.id.call_id.clone(),
            local_tag: dialog.id.local_tag.clone(),
            remote_tag: dialog.id.remote_tag.clone(),
        })
    }

    fn refer(&mut self, phone: &mut Phone, refer_to: String, shown: String) {
        let refused = if self.state != State::Confirmed {
            Some("the call is not connected")
        } else if self.transfer_target.is_some() {
            Some("a transfer is already in progress")
        } else {
            None
        };
        if let Some(reason) = refused {
            self.refuse_transfer(phone, reason.to_owned());
            return;
        }
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        let transport = self.next_hop.transport;
        let via = phone.new_via(transport);
        let mut refer = dialog.request(Method::Refer, &via);
        refer.headers.set("Max-Forwards", "70");
        refer.headers.push("Refer-To", format!("<{refer_to}>"));
        refer
            .headers
            .push("Contact", phone.contact(transport).to_string());
        let peer = self.target_peer();
        self.refer = Some(phone.send_request(peer, refer));
        tracing::info!(call = %self.id, to = %Pii(&shown), "transferring");
        self.transfer_target = Some(shown);
    }

    fn refer_response(&mut self, phone: &mut Phone, response: &Response) {
        if response.status < 200 {
            return;
        }
        self.refer = None;
        if response.status >= 300 {
            self.transfer_failed(
                phone,
                format!("transfer refused: {} {}", response.status, response.reason),
            );
        }
        // 2xx: accepted; the transferee's NOTIFYs tell how its new call goes.
    }

    /// A NOTIFY of the transfer's progress (RFC 3515 §2.4.5): its body is the status line of
    /// the transferee's call to the target (`SIP/2.0 200 OK`).
    fn transfer_progress(&mut self, phone: &mut Phone, request: &Request) {
        let status = std::str::from_utf8(&request.body)
            .ok()
            .and_then(|body| body.lines().next())
            .and_then(|line| line.strip_prefix("SIP/2.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        match status {
            Some(200..=299) => {
                let target = self.transfer_target.take().unwrap_or_default();
                phone.emit(PhoneEvent::Transferred {
                    call: self.id,
                    target,
                });
                self.send_bye(phone);
                self.end(phone, EndReason::Transferred, None, "transferred".into());
            }
            Some(code) if code >= 300 => {
                self.transfer_failed(phone, format!("the transfer target answered {code}"));
            }
            // 1xx, or a body we cannot read: wait for the next NOTIFY.
            _ => {}
        }
    }

    /// The transfer in progress failed: the call goes on.
    fn transfer_failed(&mut self, phone: &mut Phone, reason: String) {
        self.transfer_target = None;
        tracing::info!(call = %self.id, %reason, "transfer failed");
        phone.emit(PhoneEvent::TransferFailed {
            call: self.id,
            reason,
        });
    }

    /// A transfer request that cannot start (any transfer in progress goes on).
    fn refuse_transfer(&self, phone: &mut Phone, reason: String) {
        phone.emit(PhoneEvent::TransferFailed {
            call: self.id,
            reason,
        });
    }

    pub(crate) fn handle_transaction_timeout(&mut self, phone: &mut Phone, id: TransactionId) {
        if Some(id) == self.refer {
            self.refer = None;
            self.transfer_failed(phone, "no answer to the transfer request".into());
            return;
        }
        if id == self.invite_transaction && self.state == State::Calling {
            let reason = self.cancel_wanted.unwrap_or(EndReason::Timeout);
            self.end(
                phone,
                reason,
                Some(408),
                "no answer from the network".into(),
            );
            self.state = State::Finished;
        } else if self.state == State::Ending {
            self.state = State::Finished;
        }
    }

    pub(crate) fn handle_timeout(&mut self, phone: &mut Phone, now: Instant) {
        if self.auto_answer_at.is_some_and(|t| t <= now) {
            self.auto_answer_at = None;
            self.answer(phone, true);
        }
        if self.no_answer_at.is_some_and(|t| t <= now) {
            self.no_answer_at = None;
            if self.state == State::Calling {
                self.cancel_wanted = Some(EndReason::Timeout);
                self.send_cancel(phone);
                self.end(phone, EndReason::Timeout, None, "no answer in time".into());
            }
        }
        if self.linger_until.is_some_and(|t| t <= now) {
            self.state = State::Finished;
        }
    }

    /// Shutdown grace expired: report the end if not done.
    pub(crate) fn abandon(&mut self, phone: &mut Phone) {
        self.end(phone, EndReason::Failed, None, "phone stopped".into());
        self.state = State::Finished;
    }

    // ---- media ----

    fn start_media(&mut self, phone: &mut Phone, negotiated: Negotiated) {
        let mut media = negotiated.clone();
        if self.local_hold {
            media.direction = Direction::Inactive;
        }
        phone.media(MediaCommand::Start {
            call: self.id,
            local_port: self.local_port,
            media,
        });
        // The port's relay goes with its socket to the media task.
        phone.relay_candidates.remove(&self.local_port);
        self.remember_ice(&negotiated);
        self.media_started = true;
        if self.outgoing {
            phone.emit(PhoneEvent::Established {
                call: self.id,
                codec: negotiated.kind,
                remote_rtp: negotiated.remote_rtp,
                srtp: negotiated.srtp.as_ref().map(|keys| keys.suite),
            });
        }
        self.negotiated = Some(negotiated);
    }

    fn update_media(&mut self, phone: &mut Phone, negotiated: Negotiated) {
        // The peer holds us when it no longer lets us send (it offered sendonly or inactive).
        let remote_hold = !negotiated.direction.sends() && !self.local_hold
            || negotiated.direction == Direction::Inactive;
        if remote_hold != self.remote_hold {
            self.remote_hold = remote_hold;
            phone.emit(PhoneEvent::Hold {
                call: self.id,
                local: false,
                on: remote_hold,
            });
        }
        self.remember_ice(&negotiated);
        let mut media = negotiated.clone();
        if self.local_hold {
            media.direction = Direction::Inactive;
        }
        if self.media_started {
            phone.media(MediaCommand::Update {
                call: self.id,
                media,
            });
        } else {
            phone.media(MediaCommand::Start {
                call: self.id,
                local_port: self.local_port,
                media,
            });
            self.media_started = true;
        }
        self.negotiated = Some(negotiated);
    }

    /// Reports the end once (stopping media first); the SIP side may linger.
    fn end(&mut self, phone: &mut Phone, reason: EndReason, code: Option<u16>, detail: String) {
        if self.end_reported {
            return;
        }
        self.end_reported = true;
        if self.media_started {
            phone.media(MediaCommand::Stop { call: self.id });
        } else {
            // The port was never handed to a media task: keep it for the next call.
            phone.media_ports.push_back(self.local_port);
        }
        tracing::info!(call = %self.id, reason = reason.as_str(), ?code, "call ended");
        phone.emit(PhoneEvent::Ended {
            call: self.id,
            reason,
            code,
            detail,
        });
        if self.state != State::Finished {
            self.state = State::Ending;
            self.linger_until = Some(phone.now + LINGER);
        }
    }

    // ---- queries ----

    pub(crate) fn owns(&self, id: TransactionId) -> bool {
        self.invite_transaction == id
            || self.reinvite == Some(id)
            || self.refer == Some(id)
            || self.teardown.contains(&id)
    }

    pub(crate) fn matches_dialog(
        &self,
        call_id: &str,
        to_tag: Option<&str>,
        from_tag: Option<&str>,
    ) -> bool {
        let Some(dialog) = &self.dialog else {
            return false;
        };
        let id = &dialog.id;
        // An incoming request's To tag is our local tag, its From tag the remote one.
        id.call_id == call_id
            && to_tag == Some(id.local_tag.as_str())
            && (id.remote_tag.is_empty() || from_tag == Some(id.remote_tag.as_str()))
    }

    /// True when this call sends its requests to `peer`.
    pub(crate) fn uses(&self, peer: Peer) -> bool {
        self.next_hop == peer || self.target_peer() == peer
    }

    /// The transport to the other side failed.
    pub(crate) fn unreachable(&mut self, phone: &mut Phone) {
        match self.state {
            State::Calling => {
                self.end(
                    phone,
                    EndReason::Failed,
                    None,
                    format!("cannot reach {}", self.next_hop.addr),
                );
                self.state = State::Finished;
            }
            State::Ending => self.state = State::Finished,
            _ => {}
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        [self.no_answer_at, self.auto_answer_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// Answered and not ended.
    pub(crate) fn is_up(&self) -> bool {
        matches!(self.state, State::Answered | State::Confirmed)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Where in-dialog requests go: the proxy when there is a route set or an account,
    /// else the remote target when it is an IP address, else where the INVITE went/came from.
    fn target_peer(&self) -> Peer {
        let Some(dialog) = &self.dialog else {
            return self.next_hop;
        };
        if !dialog.route_set.is_empty() {
            return self.next_hop;
        }
        let target = &dialog.remote_target;
        let transport = match target
            .params
            .get("transport")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("tcp") => Transport::Tcp,
            Some("udp") => Transport::Udp,
            _ => self.next_hop.transport,
        };
        let host = target.host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Peer {
                addr: std::net::SocketAddr::new(ip, target.port.unwrap_or(5060)),
                transport,
            },
            Err(_) => self.next_hop,
        }
    }
}

/// Our media address in SDP: behind a NAT, the public address the registrar saw (the NAT
/// keeps RTP ports for most home routers; the SBC latches on what arrives otherwise).
fn local_media_addr(phone: &Phone) -> std::net::IpAddr {
    phone
        .public_addr
        .map_or(phone.config.local.addr.ip(), |public| public.ip())
}

fn local_media(phone: &mut Phone, port: u16) -> LocalMedia {
    let addr = local_media_addr(phone);
    let ice = phone
        .config
        .ice
        .dtls_fingerprint
        .clone()
        .map(|fingerprint| local_ice(phone, port, fingerprint));
    LocalMedia {
        addr,
        port,
        codecs: phone.config.codecs.clone(),
        dtmf: phone.config.dtmf,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: phone.rng.next_u64() >> 2,
        session_version: 1,
        srtp: match phone.config.srtp {
            SrtpPolicy::Off => None,
            policy => Some(LocalSrtp {
                mandatory: policy == SrtpPolicy::Mandatory,
                key_material: phone.srtp_key_material(),
            }),
        },
        ice,
    }
}

/// Our ICE side for a call on media `port`: fresh credentials, the host candidate and, behind
/// a NAT, the server-reflexive one (RFC 8445 §5.1.2 priorities, component 1: rtcp-mux).
fn local_ice(phone: &mut Phone, port: u16, fingerprint: String) -> LocalIce {
    let host = phone.config.local.addr.ip();
    let mut candidates = vec![format!("1 1 udp 2130706431 {host} {port} typ host")];
    if let Some(public) = phone.public_addr.map(|a| a.ip()).filter(|ip| *ip != host) {
        candidates.push(format!(
            "2 1 udp 1694498815 {public} {port} typ srflx raddr {host} rport {port}"
        ));
    }
    candidates.extend(phone.relay_candidates.get(&port).cloned());
    LocalIce {
        ufrag: phone.ice_token(8),
        pwd: phone.ice_token(24),
        candidates,
        fingerprint,
        offer: phone.config.ice.offer,
        mid: None,
        dtls_client: None,
    }
}

/// A dial string as a URI: full `sip:`/`sips:` URIs as they are, a bare user or number at the
/// account's domain.
fn target_uri(phone: &Phone, target: &str) -> Option<Uri> {
    let target = target.trim();
    if target.contains(':') && !target.contains('@')
        || target.starts_with("sip:")
        || target.starts_with("sips:")
    {
        return target.parse().ok();
    }
    let domain = phone.config.account.as_ref().map(|a| a.domain.clone())?;
    let (user, host) = target.split_once('@').unwrap_or((target, &domain));
    let user: String = user
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    format!("sip:{user}@{host}").parse().ok()
}

/// Gives `uri` the registrar's port when it names the registrar's host without a port.
fn with_registrar_port(uri: &mut Uri, registrar: &str) {
    let Ok(registrar) = registrar.parse::<Uri>() else {
        return;
    };
    if uri.port.is_none() && uri.host.eq_ignore_ascii_case(&registrar.host) {
        uri.port = registrar.port;
    }
}

fn body_sdp(body: &[u8]) -> Option<SessionDescription> {
    let text = std::str::from_utf8(body).ok()?;
    SessionDescription::parse(text).ok()
}

fn set_sdp(request: &mut Request, sdp: &SessionDescription) {
    request.headers.set("Content-Type", "application/sdp");
    request.body = sdp.to_string().into_bytes();
}

fn set_sdp_response(response: &mut Response, sdp: &SessionDescription) {
    response.headers.set("Content-Type", "application/sdp");
    response.body = sdp.to_string().into_bytes();
}

/// Our side of a connected call, as an attended transfer hands it over (RFC 3891).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replaces {
    /// The other party's Contact: where the transferee sends its INVITE.
    target: String,
    call_id: String,
    local_tag: String,
    remote_tag: String,
}

impl Replaces {
    /// `target?Replaces=...` with the header value escaped as a URI header (RFC 3261 §19.1.1).
    /// Seen from the transfer target, its own tag is the to-tag and ours the from-tag.
    fn refer_to(&self) -> String {
        let value = format!(
            "{};to-tag={};from-tag={}",
            self.call_id, self.remote_tag, self.local_tag
        );
        format!("{}?Replaces={}", self.target, escape_uri_header(&value))
    }
}

/// Percent-encodes what may not appear raw in a URI header value.
fn escape_uri_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        let raw = byte.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&byte);
        if raw {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod replaces_tests {
    use super::*;

    #[test]
    fn refer_to_carries_the_escaped_replaces_header() {
        let replaces = Replaces {
            target: "sip:supervisor@10.0.0.9:5060".into(),
            call_id: "a84b4c76e66710@pc33.example.com".into(),
            local_tag: "1928301774".into(),
            remote_tag: "a6c85cf".into(),
        };
        assert_eq!(
            replaces.refer_to(),
            "sip:supervisor@10.0.0.9:5060?Replaces=a84b4c76e66710%40pc33.example.com\
             %3Bto-tag%3Da6c85cf%3Bfrom-tag%3D1928301774"
        );
        assert_eq!(escape_uri_header("a b%c&d"), "a%20b%25c%26d");
    }

    #[test]
    fn transfer_targets_at_the_registrar_host_get_its_port() {
        let completed = |target: &str, registrar: &str| {
            let mut uri: Uri = target.parse().unwrap();
            with_registrar_port(&mut uri, registrar);
            uri.to_string()
        };
        assert_eq!(
            completed("sip:bob@127.0.0.1", "sip:127.0.0.1:5070"),
            "sip:bob@127.0.0.1:5070"
        );
        // Another host, or a port already given: unchanged.
        assert_eq!(
            completed("sip:bob@pbx.example", "sip:127.0.0.1:5070"),
            "sip:bob@pbx.example"
        );
        assert_eq!(
            completed("sip:bob@127.0.0.1:5080", "sip:127.0.0.1:5070"),
            "sip:bob@127.0.0.1:5080"
        );
        assert_eq!(
            completed("sip:bob@sbc.example", "sip:SBC.example"),
            "sip:bob@sbc.example"
        );
    }
}
