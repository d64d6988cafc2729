//! The engine's single owner loop: feeds the sans-IO [`Phone`] with network input, commands
//! and timeouts, and carries out what it outputs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use homeagent_audio::{SinkSpec, SourceSpec};
use homeagent_core::{
    Account, AcdConfig, CallId, Command, Credentials, IceConfig, Input, MediaCommand, Output,
    Phone, PhoneConfig, PhoneEvent, Pii, RegistrationState,
};
use homeagent_sip::message::Uri;
use homeagent_sip::transaction::{Peer, Transport};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::media::{self, AudioRoute, CallStats, MediaControl, MediaSockets, WebRtcSetup};
use crate::relay::{self, ReadyPort, RelayCandidate, RelayServer};
use crate::settings::{IceMode, TlsSettings, TurnSettings, TurnTransport};
use crate::transport::{Received, Transports};
use crate::turn_stream::{TlsTarget, TurnPath};
use crate::ws::WsUrl;
use crate::{EngineCommand, EngineError, EngineEvent, PhoneSettings};
use homeagent_media::webrtc::TurnServer;

/// Pre-bound RTP port pairs kept ready so an incoming INVITE is answered at once.
const READY_MEDIA_PORTS: usize = 2;

pub(crate) async fn start(
    settings: PhoneSettings,
) -> Result<(mpsc::Sender<EngineCommand>, mpsc::Receiver<EngineEvent>), EngineError> {
    settings.validate()?;
    let tls = crate::tls::client_config(&settings.tls)?;
    let (received_tx, mut received) = mpsc::channel(1024);
    let mut transports = Transports::bind(settings.bind, tls, settings.keepalive, received_tx)
        .await
        .map_err(|source| EngineError::Bind {
            addr: settings.bind,
            source,
        })?;
    let account = match &settings.registrar {
        Some(registrar) => Some(account(&settings, registrar, &mut transports).await?),
        None => None,
    };
    let proxy = account.as_ref().map(|a| a.proxy);
    let bound = transports.local_addr();
    let advertised_ip = advertised_ip(bound.ip(), account.as_ref().map(|a| a.proxy.addr));
    let local = Peer {
        addr: SocketAddr::new(advertised_ip, bound.port()),
        transport: Transport::Udp,
    };
    let mut config = PhoneConfig::new(local);
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        let user = settings.auth_user.clone().unwrap_or_else(|| user.clone());
        config.credentials = Some(Credentials {
            user,
            password: password.clone(),
        });
    }
    config.account = account;
    config.codecs = settings.codecs.clone();
    config.answer = settings.answer;
    config.no_answer_timeout = settings.no_answer_timeout;
    if let Some(server) = &settings.stun {
        config.public_addr = stun_public_address(server, &transports, &mut received).await;
    }
    config.srtp = settings.srtp;
    config.inbound_filter = settings.inbound_filter;
    config.instance_id = Some(instance_id(settings.user.as_deref().unwrap_or_default()));
    let (media_failed_tx, media_failed) = mpsc::channel(8);
    let webrtc = webrtc_setup(settings.ice, config.local.addr.ip(), media_failed_tx).await;
    let turn = match (&settings.turn, &webrtc) {
        (Some(turn), Some(_)) => Some(turn_server(turn, &settings.tls).await?),
        _ => None,
    };
    config.ice = IceConfig {
        dtls_fingerprint: webrtc.as_ref().map(|w| w.identity.sdp_fingerprint()),
        offer: webrtc.is_some()
            && match settings.ice {
                IceMode::On => true,
                IceMode::Off => false,
                // The WebRTC face of a platform is the one reached over WebSocket.
                IceMode::Auto => {
                    proxy.is_some_and(|p| matches!(p.transport, Transport::Ws | Transport::Wss))
                }
            },
    };
    config.acd = AcdConfig {
        platform: resolve_platform(&settings.platform).await?,
        auto_answer_all: settings.auto_answer_all,
        wrapup: settings.wrapup.clone(),
        // SIP-only contact-center mode: the agent's state as presence, where the registrar
        // takes it.
        publish_presence: !settings.platform.is_empty(),
    };
    if let Some(user) = &settings.user {
        config.contact_user = user.clone();
    }
    let mut phone = Phone::new(config, rand::random(), Instant::now().into_std());
    // SRTP keys come from a generator seeded by the OS's (thread_rng: ChaCha, OS-seeded).
    phone.set_key_seed(rand::random());
    let (commands_tx, commands) = mpsc::channel(64);
    let (events, events_rx) = mpsc::channel(1024);
    let (relay_candidates_tx, relay_candidates) = mpsc::channel(8);
    let driver = Driver {
        turn,
        relay_candidates,
        relay_candidates_tx,
        media_failed,
        unsettled_ports: std::collections::HashSet::new(),
        phone,
        transports,
        received,
        commands,
        events,
        media_ip: if bound.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            bound.ip()
        },
        rtp_ports: settings.rtp_ports,
        next_port: rand::random(),
        ready_ports: HashMap::new(),
        calls: HashMap::new(),
        finished: HashMap::new(),
        route: AudioRoute {
            input: settings.audio_in.clone(),
            output: settings.audio_out.clone(),
            processing: settings.audio_processing,
            zip_tone: false,
        },
        auto_answered: std::collections::HashSet::new(),
        platform_delivery: !settings.platform.is_empty(),
        has_account: settings.registrar.is_some(),
        proxy,
        connect_failure: None,
        webrtc,
        sip_bound_to_any: bound.ip().is_unspecified(),
        local_ip: advertised_ip,
    };
    let mut driver = driver;
    driver.settle_first_relays().await;
    let _ = driver.events.send(EngineEvent::Ready { sip: bound }).await;
    tokio::spawn(driver.run());
    Ok((commands_tx, events_rx))
}

struct Driver {
    phone: Phone,
    /// The DTLS certificate of calls with ICE + DTLS-SRTP (`None` with `--ice off`).
    webrtc: Option<WebRtcSetup>,
    /// The SIP socket listens on every interface: our address follows the route.
    sip_bound_to_any: bool,
    /// Our address in Contact and SDP.
    local_ip: IpAddr,
    transports: Transports,
    received: mpsc::Receiver<Received>,
    commands: mpsc::Receiver<EngineCommand>,
    events: mpsc::Sender<EngineEvent>,
    media_ip: IpAddr,
    rtp_ports: (u16, u16),
    next_port: u16,
    ready_ports: HashMap<u16, ReadyPort>,
    /// The TURN server ready ports allocate a relay on (ICE calls only).
    turn: Option<RelayServer>,
    /// Relay candidates of ready ports, for the phone.
    relay_candidates: mpsc::Receiver<RelayCandidate>,
    relay_candidates_tx: mpsc::Sender<RelayCandidate>,
    /// Calls whose ICE/DTLS media could not connect: hung up.
    media_failed: mpsc::Receiver<CallId>,
    /// Relayed ports not yet offered to calls: their relay has not settled.
    unsettled_ports: std::collections::HashSet<u16>,
    calls: HashMap<CallId, ActiveMedia>,
    /// Media figures of calls whose media stopped, until the phone reports their end.
    finished: HashMap<CallId, CallStats>,
    route: AudioRoute,
    /// Calls answered by themselves, whose media starts with the zip tone.
    auto_answered: std::collections::HashSet<CallId>,
    /// A platform is configured: its calls answer themselves and start with the zip tone.
    platform_delivery: bool,
    has_account: bool,
    /// The registrar / outbound proxy, when there is an account.
    proxy: Option<Peer>,
    /// Why the last connection to an address failed, to name the cause when the phone
    /// reports the registration failed (e.g. a certificate not valid for the host).
    connect_failure: Option<(SocketAddr, String)>,
}

struct ActiveMedia {
    control: mpsc::Sender<MediaControl>,
    started: Instant,
}

impl Driver {
    async fn run(mut self) {
        let mut network_check = tokio::time::interval(NETWORK_CHECK);
        network_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.top_up_media_ports().await;
            let Some(deadline) = self.drain().await else {
                break;
            };
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    // Every front end is gone: leave cleanly (BYE, un-REGISTER).
                    None => self.input(Input::Command(now(), Command::Shutdown)),
                },
                received = self.received.recv() => match received {
                    Some(received) => self.receive(received).await,
                    None => break,
                },
                Some((port, candidate)) = self.relay_candidates.recv() => {
                    self.relay_settled(port, candidate);
                }
                _ = network_check.tick() => self.check_network(),
                Some(call) = self.media_failed.recv() => {
                    // No audio can flow: a silent call helps nobody (the customer hears
                    // nothing either). The reason was reported as a warning.
                    self.input(Input::Command(now(), Command::Hangup { call }));
                }
                _ = sleep_until(deadline) => self.input(Input::Timeout(now())),
            }
        }
        for (_, media) in self.calls.drain() {
            let (reply, _) = oneshot::channel();
            let _ = media.control.send(MediaControl::Stop(reply)).await;
        }
    }

    fn input(&mut self, input: Input) {
        self.phone.handle_input(input);
    }

    async fn command(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::Phone(Command::Call {
                uri,
                next_hop: None,
            }) if !self.has_account => {
                let next_hop = resolve_target(&uri, &mut self.transports).await;
                self.input(Input::Command(now(), Command::Call { uri, next_hop }));
            }
            EngineCommand::Phone(command) => self.input(Input::Command(now(), command)),
            EngineCommand::Mute { call, muted } => match self.calls.get(&call) {
                Some(media) => {
                    let _ = media.control.send(MediaControl::Mute(muted)).await;
                }
                None => self.warn(format!("no active call {call} to mute")).await,
            },
            EngineCommand::SetAudio { input, output } => self.set_audio(input, output).await,
            EngineCommand::SendDtmf { call, digits } => match self.calls.get(&call) {
                Some(media) => {
                    let _ = media.control.send(MediaControl::SendDtmf(digits)).await;
                }
                None => {
                    self.warn(format!("no active call {call} to send DTMF to"))
                        .await
                }
            },
        }
    }

    async fn receive(&mut self, received: Received) {
        match received {
            Received::Datagram { from, bytes } => self.input(Input::Datagram {
                now: now(),
                from,
                bytes,
            }),
            Received::Message { from, message } => self.input(Input::Message {
                now: now(),
                from,
                message,
            }),
            Received::Connected { from, flow, sender } => {
                self.transports.adopt(from.addr, flow, sender)
            }
            Received::ConnectFailed { to, flow, reason } => {
                self.transports.forget(to.addr, flow);
                self.warn(format!("cannot connect to {}: {reason}", to.addr))
                    .await;
                self.connect_failure = Some((to.addr, reason));
                self.input(Input::TransportError { now: now(), to });
            }
            Received::Closed { peer, flow, reason } => {
                if self.transports.forget(peer.addr, flow) {
                    tracing::info!(peer = %peer.addr, %reason, "connection closed");
                    self.connect_failure = Some((peer.addr, reason));
                    self.input(Input::FlowClosed {
                        now: now(),
                        to: peer,
                    });
                }
            }
        }
    }

    /// Carries out the phone's outputs; returns its next deadline, or `None` once it stopped.
    async fn drain(&mut self) -> Option<Option<Instant>> {
        loop {
            match self.phone.poll_output() {
                Output::Transmit(transmit) => {
                    let to = transmit.to;
                    tracing::trace!(peer = %to.addr, transport = to.transport.as_str(), "SIP out:\n{}", Pii(&transmit.message));
                    if let Err(error) = self.transports.send(to, transmit.message.to_bytes()).await
                    {
                        tracing::warn!(%error, peer = %to.addr, "SIP send failed");
                        self.input(Input::TransportError { now: now(), to });
                    }
                }
                Output::Media(command) => self.media(command).await,
                Output::Event(event) => {
                    if self.event(event).await {
                        return None;
                    }
                }
                Output::Timeout(deadline) => return Some(deadline.map(Instant::from_std)),
            }
        }
    }

    /// Forwards a phone event; true when the phone has stopped.
    async fn event(&mut self, event: PhoneEvent) -> bool {
        let stopped = event == PhoneEvent::Stopped;
        let event = match event {
            PhoneEvent::Ended {
                call,
                reason,
                code,
                detail,
            } => {
                let stats = match self.calls.remove(&call) {
                    Some(media) => stop_media(media).await,
                    None => self.finished.remove(&call).unwrap_or_default(),
                };
                EngineEvent::Ended {
                    call,
                    reason,
                    code,
                    detail,
                    stats,
                }
            }
            PhoneEvent::Registration(RegistrationState::Failed { code: None, reason }) => {
                // The phone only knows the registrar was unreachable: say why.
                let cause = match self.connect_failure.take() {
                    Some((addr, cause)) if self.proxy.is_some_and(|p| p.addr == addr) => {
                        format!(": {cause}")
                    }
                    _ => String::new(),
                };
                EngineEvent::Phone(PhoneEvent::Registration(RegistrationState::Failed {
                    code: None,
                    reason: format!("{reason}{cause}"),
                }))
            }
            event => {
                if let PhoneEvent::Registration(RegistrationState::Registered { .. }) = &event {
                    self.connect_failure = None;
                }
                if let PhoneEvent::Answered { call, auto: true } = &event
                    && self.platform_delivery
                {
                    self.auto_answered.insert(*call);
                }
                EngineEvent::Phone(event)
            }
        };
        let _ = self.events.send(event).await;
        stopped
    }

    async fn media(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Start {
                call,
                local_port,
                media,
            } => {
                let ready = self.ready_ports.remove(&local_port);
                let Some(sockets) = (match ready {
                    Some(ready) => ready.take().await,
                    None => None,
                }) else {
                    tracing::error!(local_port, "phone used an RTP port the engine did not bind");
                    return;
                };
                let route = AudioRoute {
                    zip_tone: self.auto_answered.remove(&call),
                    ..self.route.clone()
                };
                match media::spawn(
                    call,
                    sockets,
                    media,
                    route,
                    self.webrtc.as_ref(),
                    self.events.clone(),
                ) {
                    Ok(control) => {
                        self.calls.insert(
                            call,
                            ActiveMedia {
                                control,
                                started: Instant::now(),
                            },
                        );
                    }
                    Err(error) => self.warn(format!("cannot start media: {error}")).await,
                }
            }
            MediaCommand::Update { call, media } => {
                if let Some(active) = self.calls.get(&call) {
                    let _ = active.control.send(MediaControl::Update(media)).await;
                }
            }
            MediaCommand::Stop { call } => {
                if let Some(media) = self.calls.remove(&call) {
                    let stats = stop_media(media).await;
                    self.finished.insert(call, stats);
                }
            }
        }
    }

    /// Bound to every interface, our address is the one the route to the registrar leaves
    /// from: when that changes (another Wi-Fi, a cable plugged in), the phone moves its
    /// Contact, SDP and ICE to it. Without a route (network down) nothing changes yet.
    fn check_network(&mut self) {
        let (Some(proxy), true) = (self.proxy, self.sip_bound_to_any) else {
            return;
        };
        let Some(ip) = route_source(proxy.addr) else {
            return;
        };
        if ip == self.local_ip {
            return;
        }
        tracing::info!(from = %self.local_ip, to = %ip, "the network changed");
        self.local_ip = ip;
        if let Some(webrtc) = self.webrtc.as_mut() {
            webrtc.host = ip;
        }
        self.input(Input::NetworkChanged {
            now: now(),
            local_ip: Some(ip),
        });
    }

    /// With TURN, the first media ports wait for their relay before the phone starts (at most
    /// the relay's settling time): a call placed at once then offers the relay candidate.
    async fn settle_first_relays(&mut self) {
        self.top_up_media_ports().await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.unsettled_ports.is_empty() {
            match tokio::time::timeout_at(deadline, self.relay_candidates.recv()).await {
                Ok(Some((port, candidate))) => self.relay_settled(port, candidate),
                _ => break,
            }
        }
    }

    fn relay_settled(&mut self, port: u16, candidate: Option<String>) {
        if let Some(candidate) = candidate {
            self.input(Input::RelayCandidate { port, candidate });
        }
        // A relayed port is offered to calls once its relay settled.
        if self.unsettled_ports.remove(&port) {
            self.input(Input::MediaPortReady(port));
        }
    }

    async fn top_up_media_ports(&mut self) {
        while self.ready_ports.len() < READY_MEDIA_PORTS {
            self.next_port = self.next_port.wrapping_add(1);
            match MediaSockets::bind(self.media_ip, self.rtp_ports, self.next_port).await {
                Some((port, sockets)) => {
                    let ready = match (&self.turn, &self.webrtc) {
                        (Some(server), Some(webrtc)) => relay::keep(
                            port,
                            sockets,
                            server.clone(),
                            SocketAddr::new(webrtc.host, port),
                            self.relay_candidates_tx.clone(),
                        ),
                        _ => ReadyPort::Plain(sockets),
                    };
                    if matches!(ready, ReadyPort::Relayed(_)) {
                        // Offered to calls once its relay candidate is known (or late).
                        self.unsettled_ports.insert(port);
                    } else {
                        self.input(Input::MediaPortReady(port));
                    }
                    self.ready_ports.insert(port, ready);
                }
                None => {
                    let (low, high) = self.rtp_ports;
                    tracing::error!("no free RTP port pair in {low}-{high}");
                    return;
                }
            }
        }
    }

    /// New devices for the next calls and, switched at once, for the calls in progress.
    async fn set_audio(&mut self, input: Option<String>, output: Option<String>) {
        let input = match input.map(|spec| spec.parse::<SourceSpec>()).transpose() {
            Ok(input) => input,
            Err(error) => return self.warn(format!("audio input not changed: {error}")).await,
        };
        let output = match output.map(|spec| spec.parse::<SinkSpec>()).transpose() {
            Ok(output) => output,
            Err(error) => {
                return self
                    .warn(format!("audio output not changed: {error}"))
                    .await;
            }
        };
        if let Some(input) = &input {
            self.route.input = input.clone();
        }
        if let Some(output) = &output {
            self.route.output = output.clone();
        }
        for media in self.calls.values() {
            let switch = MediaControl::Route {
                input: input.clone(),
                output: output.clone(),
            };
            let _ = media.control.send(switch).await;
        }
    }

    async fn warn(&self, message: String) {
        tracing::warn!("{message}");
        let _ = self.events.send(EngineEvent::Warning { message }).await;
    }
}

/// `HOST[:PORT]` entries as addresses (every address of a name; the port only when given).
/// How long each STUN attempt waits for its answer (three attempts).
const STUN_WAIT: Duration = Duration::from_millis(500);

/// Asks the STUN server `server` (`HOST:PORT`) from our SIP socket where it sees us, before the
/// phone starts; `None` (with a warning in the log) when it does not answer. Datagrams other
/// than the answer, in that first second, are dropped.
async fn stun_public_address(
    server: &str,
    transports: &Transports,
    received: &mut mpsc::Receiver<Received>,
) -> Option<SocketAddr> {
    let Some(server_addr) = tokio::net::lookup_host(server)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
    else {
        tracing::warn!(server, "STUN server has no address");
        return None;
    };
    for _ in 0..3 {
        let transaction_id: [u8; 12] = rand::random();
        let request = homeagent_media::stun::binding_request(transaction_id);
        if let Err(error) = transports.send_datagram(server_addr, &request).await {
            tracing::warn!(%error, server, "STUN request not sent");
            return None;
        }
        let deadline = tokio::time::Instant::now() + STUN_WAIT;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, received.recv()).await {
            if let Received::Datagram { from, bytes } = message
                && from.addr == server_addr
                && let Ok(mapped) = homeagent_media::stun::mapped_address(&bytes, transaction_id)
            {
                tracing::info!(%mapped, server, "STUN: our SIP socket is seen at this address");
                return Some(mapped);
            }
        }
    }
    tracing::warn!(
        server,
        "STUN server did not answer: using the local address"
    );
    None
}

async fn resolve_platform(entries: &[String]) -> Result<Vec<(IpAddr, Option<u16>)>, EngineError> {
    let mut resolved = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            resolved.push((addr.ip(), Some(addr.port())));
            continue;
        }
        if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            resolved.push((ip, None));
            continue;
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => match port.parse::<u16>() {
                Ok(port) => (host, Some(port)),
                Err(_) => (entry, None),
            },
            None => (entry, None),
        };
        let addrs = tokio::net::lookup_host((host, port.unwrap_or(5060)))
            .await
            .map_err(|error| EngineError::Resolve {
                what: format!("platform {entry}"),
                reason: error.to_string(),
            })?;
        resolved.extend(addrs.map(|addr| (addr.ip(), port)));
    }
    Ok(resolved)
}

async fn stop_media(media: ActiveMedia) -> CallStats {
    let (reply, answer) = oneshot::channel();
    let duration = media.started.elapsed();
    if media.control.send(MediaControl::Stop(reply)).await.is_err() {
        return CallStats::default();
    }
    match tokio::time::timeout(Duration::from_secs(2), answer).await {
        Ok(Ok(stats)) => CallStats { duration, ..stats },
        _ => CallStats::default(),
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The account from the settings, with the registrar resolved.
async fn account(
    settings: &PhoneSettings,
    registrar: &str,
    transports: &mut Transports,
) -> Result<Account, EngineError> {
    let uri: Uri = registrar.parse().map_err(|_| {
        EngineError::Settings(crate::SettingsError::BadRegistrar(registrar.to_owned()))
    })?;
    let proxy = match &settings.ws_url {
        Some(url) => resolve_websocket(url, transports).await,
        None => resolve_uri(&uri, transports).await,
    }
    .map_err(|reason| EngineError::Resolve {
        what: settings.ws_url.as_deref().unwrap_or(registrar).to_owned(),
        reason,
    })?;
    Ok(Account {
        registrar: registrar.to_owned(),
        proxy,
        domain: uri.host.clone(),
        user: settings.user.clone().unwrap_or_default(),
        auth_user: settings.auth_user.clone(),
        password: settings.password.clone().unwrap_or_default(),
        expires: settings.expires,
    })
}

/// Where to send an out-of-dialog request for `target` when there is no outbound proxy.
async fn resolve_target(target: &str, transports: &mut Transports) -> Option<Peer> {
    let uri: Uri = target.parse().ok()?;
    resolve_uri(&uri, transports).await.ok()
}

/// Resolves a SIP URI's host, port (default 5060, 5061 for sips/TLS) and transport. For TLS,
/// the server's certificate will have to be valid for the URI's host.
async fn resolve_uri(uri: &Uri, transports: &mut Transports) -> Result<Peer, String> {
    let peer = resolve_address(uri).await?;
    if matches!(peer.transport, Transport::Tls | Transport::Wss) {
        let name = crate::tls::server_name(&uri.host)
            .ok_or_else(|| format!("{:?} is not a valid TLS server name", uri.host))?;
        transports.expect_tls_name(peer.addr, name);
    }
    if matches!(peer.transport, Transport::Ws | Transport::Wss) {
        let url = WsUrl {
            secure: peer.transport == Transport::Wss,
            host: uri.host.trim_matches(['[', ']']).to_owned(),
            port: peer.addr.port(),
            path: "/".to_owned(),
        };
        transports.expect_websocket(peer.addr, url);
    }
    Ok(peer)
}

/// Resolves a WebSocket server's URL (`--ws-url`) to the peer SIP requests go to; with `wss`,
/// its certificate will have to be valid for the URL's host.
async fn resolve_websocket(url: &str, transports: &mut Transports) -> Result<Peer, String> {
    let url = WsUrl::parse(url).map_err(str::to_owned)?;
    let addr = match url.host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, url.port),
        Err(_) => tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| format!("{} has no address", url.host))?,
    };
    let transport = if url.secure {
        let name = crate::tls::server_name(&url.host)
            .ok_or_else(|| format!("{:?} is not a valid TLS server name", url.host))?;
        transports.expect_tls_name(addr, name);
        Transport::Wss
    } else {
        Transport::Ws
    };
    transports.expect_websocket(addr, url);
    Ok(Peer { addr, transport })
}

async fn resolve_address(uri: &Uri) -> Result<Peer, String> {
    let transport = match uri
        .params
        .get("transport")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        Some("tls") => Transport::Tls,
        Some("ws") => Transport::Ws,
        Some("wss") => Transport::Wss,
        Some(other) => return Err(format!("unknown transport {other:?}")),
    };
    // `sips:` means TLS on every hop (RFC 3261 §19.1.2), whatever the parameter says.
    let transport = match transport {
        Transport::Udp | Transport::Tcp if uri.is_secure() => Transport::Tls,
        Transport::Ws if uri.is_secure() => Transport::Wss,
        transport => transport,
    };
    // WebSocket servers listen on the web's ports unless the URI says otherwise.
    let port = uri.port.unwrap_or(match transport {
        Transport::Ws => 80,
        Transport::Wss => 443,
        _ if uri.is_secure() || transport == Transport::Tls => 5061,
        _ => 5060,
    });
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Peer {
            addr: SocketAddr::new(ip, port),
            transport,
        });
    }
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let addr = addrs
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    Ok(Peer { addr, transport })
}

/// The address to put in Via/Contact/SDP: the bound one, or when bound to any address, the one
/// the system would use to reach the proxy (loopback when there is none).
fn advertised_ip(bound: IpAddr, proxy: Option<SocketAddr>) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    proxy
        .and_then(route_source)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The address packets to `to` leave from, by the routing table (`None`: no route).
fn route_source(to: SocketAddr) -> Option<IpAddr> {
    // Connecting a UDP socket sends nothing; it only asks the routing table.
    std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
        .and_then(|socket| {
            socket.connect(to)?;
            socket.local_addr()
        })
        .ok()
        .map(|addr| addr.ip())
        .filter(|ip| !ip.is_unspecified())
}

/// How often a phone bound to every interface checks which address its route leaves from.
const NETWORK_CHECK: Duration = Duration::from_secs(5);

/// The DTLS certificate for WebRTC-style calls, made once at start (a P-256 key: a few ms, off
/// the async threads). Without it (`--ice off`, or should the key generation fail) offers with
/// ICE/DTLS are refused.
async fn webrtc_setup(
    mode: IceMode,
    host: IpAddr,
    failed: mpsc::Sender<CallId>,
) -> Option<WebRtcSetup> {
    if mode == IceMode::Off {
        return None;
    }
    match tokio::task::spawn_blocking(homeagent_media::webrtc::DtlsIdentity::generate).await {
        Ok(Ok(identity)) => Some(WebRtcSetup {
            identity,
            host,
            failed,
        }),
        Ok(Err(error)) => {
            tracing::warn!(%error, "no DTLS certificate: ICE/DTLS calls are refused");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "no DTLS certificate: ICE/DTLS calls are refused");
            None
        }
    }
}

/// The TURN server of `--turn`, resolved once at start (IPv4 first: the media sockets are), and
/// how it is reached (over TLS: trusting what SIP over TLS trusts, for the URI's host name).
async fn turn_server(turn: &TurnSettings, tls: &TlsSettings) -> Result<RelayServer, EngineError> {
    let endpoint = turn.endpoint()?;
    let host = endpoint.host.as_str();
    let resolve = |reason: String| EngineError::Resolve {
        what: format!("TURN server {host}"),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, endpoint.port))
        .await
        .map_err(|error| resolve(error.to_string()))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| resolve("no address".to_owned()))?;
    let path = match endpoint.transport {
        TurnTransport::Udp => TurnPath::Udp,
        TurnTransport::Tcp => TurnPath::Tcp,
        TurnTransport::Tls => TurnPath::Tls(TlsTarget {
            connector: tokio_rustls::TlsConnector::from(crate::tls::client_config(tls)?),
            name: crate::tls::server_name(host).ok_or_else(|| {
                crate::SettingsError::BadTurnUri {
                    uri: turn.uri.clone(),
                    reason: "the host is not a TLS server name",
                }
            })?,
        }),
    };
    Ok(RelayServer {
        server: TurnServer {
            addr,
            username: turn.username.clone(),
            password: turn.password.clone(),
        },
        path,
    })
}

/// This device's RFC 5626 instance id for `user`: a name-based UUID (SHA-256, version 5 bits)
/// of the machine id and the user, the same at every start; random when the machine has no id.
/// The machine id itself is not revealed.
fn instance_id(user: &str) -> String {
    use sha2::Digest;
    let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let digest = sha2::Sha256::digest(format!("homeagent-instance:{machine}:{user}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod instance_tests {
    use super::instance_id;

    #[test]
    fn the_instance_id_is_a_stable_uuid_urn_per_user() {
        let alice = instance_id("alice");
        assert_eq!(alice, instance_id("alice"), "the same at every start");
        assert_ne!(alice, instance_id("bob"));
        let uuid = alice.strip_prefix("urn:uuid:").expect("urn:uuid:");
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
        assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(uuid.chars().nth(14), Some('5'), "version 5 (name-based)");
    }
}
