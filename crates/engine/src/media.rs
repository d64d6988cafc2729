//! One task per call: the RTP/RTCP sockets, the sans-IO [`MediaSession`], and the audio
//! source and sink, clocked every ptime like a sound card.

use std::net::SocketAddr;
use std::time::Duration;

use homeagent_audio::{
    AudioError, AudioProcessor, AudioSink, AudioSource, SinkSpec, SourceSpec, SourceState,
};
use homeagent_core::{CallId, CodecKind, MediaParams};
use homeagent_media::sdp::{NegotiatedIce, SrtpSuite};
use homeagent_media::srtp::SrtpTransform;
use homeagent_media::webrtc::{
    DtlsIdentity, DtlsRole, Fingerprint, IceCredentials, RemoteParams, TurnAllocation, WebRtcEvent,
    WebRtcTransport,
};
use homeagent_media::{MediaConfig, MediaEvent, MediaSession, MediaStats, QualityReport};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::EngineEvent;
use crate::arrival;
use crate::settings::ProcessingSettings;
use crate::turn_stream::{self, TurnStream};

/// The two sockets of a call's media (RTP on an even port, RTCP on the next).
#[derive(Debug)]
pub(crate) struct MediaSockets {
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    /// A TURN allocation made from `rtp` (or over `turn_stream`) for ICE calls (see
    /// `crate::relay`).
    pub(crate) relay: Option<Box<TurnAllocation>>,
    /// The TCP/TLS connection `relay` reaches its server over, when not UDP.
    pub(crate) turn_stream: Option<Box<TurnStream>>,
}

impl MediaSockets {
    /// Binds an even port and the next one, trying ports of the range from `start` on.
    pub(crate) async fn bind(
        ip: std::net::IpAddr,
        range: (u16, u16),
        start: u16,
    ) -> Option<(u16, Self)> {
        let (low, high) = range;
        let span = u32::from(high.saturating_sub(low)) / 2;
        if span == 0 {
            return None;
        }
        for i in 0..span.min(500) {
            let offset = (u32::from(start) + i) % span;
            let Ok(port) = u16::try_from(u32::from(low) + offset * 2) else {
                continue;
            };
            let port = port & !1;
            if port < low || port.checked_add(1).is_none_or(|p| p > high) {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind((ip, port)).await else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await else {
                continue;
            };
            return Some((
                port,
                Self {
                    rtp,
                    rtcp,
                    relay: None,
                    turn_stream: None,
                },
            ));
        }
        None
    }
}

// A few messages per call: boxing the parameters would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum MediaControl {
    Update(MediaParams),
    SendDtmf(String),
    Mute(bool),
    /// Switch to other devices (`None`: keep that side); the old device plays on until the
    /// new one is open.
    Route {
        input: Option<SourceSpec>,
        output: Option<SinkSpec>,
    },
    /// Stop, answer with the final figures (the driver fills in the duration).
    Stop(oneshot::Sender<CallStats>),
}

/// What a call with ICE + DTLS-SRTP needs from the engine: the certificate whose fingerprint
/// the SDP carries, and the address written in our host candidate.
#[derive(Debug, Clone)]
pub(crate) struct WebRtcSetup {
    pub(crate) identity: DtlsIdentity,
    pub(crate) host: std::net::IpAddr,
    /// Calls whose ICE or DTLS failed, for the driver to hang up.
    pub(crate) failed: mpsc::Sender<CallId>,
}

/// What the call task needs besides the negotiated parameters.
#[derive(Debug, Clone)]
pub(crate) struct AudioRoute {
    pub(crate) input: SourceSpec,
    pub(crate) output: SinkSpec,
    pub(crate) processing: ProcessingSettings,
    /// Play the zip tone first: the call was answered by itself (ACD delivery), the agent
    /// must know a customer is there.
    pub(crate) zip_tone: bool,
}

impl AudioRoute {
    /// The echo canceller / noise suppressor / gain control of a call at `rate` Hz, if any
    /// stage is on for this route.
    fn processor(&self, rate: u32) -> Result<Option<AudioProcessor>, AudioError> {
        let config = self.processing.resolve(&self.input, &self.output);
        if !config.any() {
            return Ok(None);
        }
        AudioProcessor::new(rate, config).map(Some)
    }
}

pub(crate) fn spawn(
    call: CallId,
    mut sockets: MediaSockets,
    params: MediaParams,
    route: AudioRoute,
    webrtc: Option<&WebRtcSetup>,
    events: mpsc::Sender<EngineEvent>,
) -> Result<mpsc::Sender<MediaControl>, String> {
    let config = MediaConfig {
        codec: params.codec.clone(),
        kind: params.kind,
        dtmf: params.dtmf.clone(),
        ptime_ms: params.ptime_ms,
        ssrc: rand::random(),
        initial_seq: rand::random(),
        initial_timestamp: rand::random(),
        cname: format!("{:016x}@homeagent", rand::random::<u64>()),
        wallclock: Some(std::time::SystemTime::now()),
    };
    let mut session =
        MediaSession::new(config, Instant::now().into_std()).map_err(|e| e.to_string())?;
    // RFC 7587: the receiver says whether it wants in-band FEC.
    let fec_refused = params
        .codec
        .fmtp
        .as_deref()
        .is_some_and(|f| f.replace(' ', "").contains("useinbandfec=0"));
    session.set_inband_fec(!fec_refused);
    // Silence suppression when the receiver asked for it: Opus DTX (`usedtx=1`), or RFC 3389
    // comfort noise for G.711 when both sides listed CN.
    session.set_dtx(params.codec.fmtp_flag("usedtx"));
    session.set_comfort_noise(params.comfort_noise.as_ref().map(|cn| cn.payload_type));
    let srtp = match &params.srtp {
        Some(keys) => Some(SrtpTransform::new(keys).map_err(|e| e.to_string())?),
        None => None,
    };
    let webrtc = match (&params.ice, webrtc) {
        (None, _) => None,
        (Some(ice), Some(setup)) => {
            let port = sockets.rtp.local_addr().map_err(|e| e.to_string())?.port();
            Some(CallWebRtc::start(
                ice,
                setup,
                port,
                sockets.relay.take().map(|r| *r),
                sockets.turn_stream.take(),
            )?)
        }
        (Some(_), None) => return Err("ICE negotiated without a DTLS certificate".to_owned()),
    };
    arrival::enable(&sockets.rtp);
    arrival::enable(&sockets.rtcp);
    let (control, commands) = mpsc::channel(16);
    let task = CallMedia {
        call,
        sockets,
        session,
        params,
        srtp,
        webrtc,
        route,
        events,
        commands,
    };
    tokio::spawn(task.run());
    Ok(control)
}

struct CallMedia {
    call: CallId,
    sockets: MediaSockets,
    session: MediaSession,
    params: MediaParams,
    /// SRTP with the SDES keys, when negotiated: every packet out is protected, every packet
    /// in must authenticate.
    srtp: Option<SrtpTransform>,
    /// ICE + DTLS-SRTP, when negotiated: every datagram goes through it, media goes to the
    /// pair it selected.
    webrtc: Option<CallWebRtc>,
    route: AudioRoute,
    events: mpsc::Sender<EngineEvent>,
    commands: mpsc::Receiver<MediaControl>,
}

/// A call's ICE + DTLS-SRTP transport, and what was reported of it.
struct CallWebRtc {
    transport: WebRtcTransport,
    /// The pair ICE selected, as the summary names it.
    pair: Option<(String, String)>,
    /// The SRTP profile DTLS negotiated.
    profile: Option<SrtpSuite>,
    /// Reported to the front ends (again after an ICE restart).
    reported: bool,
    /// The connection to the TURN server of the relay, when not reached over UDP: what the
    /// transport sends to the server goes over it, what comes from it goes to the transport.
    turn_stream: Option<Box<TurnStream>>,
    /// Where a failure goes (the driver hangs the call up).
    failed: mpsc::Sender<CallId>,
}

impl CallWebRtc {
    fn start(
        ice: &NegotiatedIce,
        setup: &WebRtcSetup,
        port: u16,
        relay: Option<TurnAllocation>,
        turn_stream: Option<Box<TurnStream>>,
    ) -> Result<Self, String> {
        let now = Instant::now().into_std();
        let host = SocketAddr::new(setup.host, port);
        let mut transport = WebRtcTransport::with_identity(
            now,
            &[host],
            &setup.identity,
            Some(local_credentials(ice)),
            ice.controlling,
        )
        .map_err(|e| e.to_string())?;
        // The connection only serves its allocation.
        let turn_stream = relay.as_ref().and(turn_stream);
        if let Some(relay) = relay {
            transport
                .attach_relay(now, relay)
                .map_err(|e| e.to_string())?;
        }
        let (remote, role) = remote_params(ice)?;
        transport
            .set_remote(now, remote, role, ice.controlling)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            transport,
            pair: None,
            profile: None,
            reported: false,
            turn_stream,
            failed: setup.failed.clone(),
        })
    }

    /// A later SDP: new credentials on either side are an ICE restart.
    fn update(&mut self, ice: &NegotiatedIce) -> Result<(), String> {
        let now = Instant::now().into_std();
        let restart = ice.local_ufrag != self.transport.local_credentials().ufrag;
        self.transport
            .set_local_credentials(now, local_credentials(ice))
            .map_err(|e| e.to_string())?;
        let (remote, role) = remote_params(ice)?;
        self.transport
            .set_remote(now, remote, role, ice.controlling)
            .map_err(|e| e.to_string())?;
        if restart {
            self.pair = None;
            self.reported = false;
        }
        Ok(())
    }
}

fn local_credentials(ice: &NegotiatedIce) -> IceCredentials {
    IceCredentials {
        ufrag: ice.local_ufrag.clone(),
        pwd: ice.local_pwd.clone(),
    }
}

/// The peer's side from SDP, and our DTLS role.
fn remote_params(ice: &NegotiatedIce) -> Result<(RemoteParams, DtlsRole), String> {
    let (algorithm, value) = ice
        .remote_fingerprint
        .split_once(' ')
        .ok_or_else(|| format!("malformed a=fingerprint {:?}", ice.remote_fingerprint))?;
    let remote = RemoteParams {
        credentials: IceCredentials {
            ufrag: ice.remote_ufrag.clone(),
            pwd: ice.remote_pwd.clone(),
        },
        candidates: ice.remote_candidates.clone(),
        fingerprint: Fingerprint {
            algorithm: algorithm.trim().to_owned(),
            value: value.trim().to_owned(),
        },
        ice_lite: ice.remote_ice_lite,
    };
    let role = if ice.dtls_client {
        DtlsRole::Client
    } else {
        DtlsRole::Server
    };
    Ok((remote, role))
}

impl CallMedia {
    async fn run(mut self) {
        let rate = self.session.sample_rate();
        let samples = self.session.frame_samples();
        // Opening a device blocks, for up to seconds: PulseAudio starts a capture stream only
        // with the source's first fragment. Each device opens on a blocking thread of its own
        // while the clock already ticks with silence and no output, and joins when ready.
        // Waiting instead would let the peer's RTP queue up in the socket, reach the jitter
        // buffer as one burst and be played late, a frame dropped every 200 ms until the
        // delay shrank back; and the playback would wait for the capture.
        let mut source = silence(rate, samples);
        let mut sink = null_sink(rate, samples);
        let input = self.route.input.clone();
        let mut opening_source = Some(tokio::task::spawn_blocking(move || {
            homeagent_audio::open_source(&input, rate, samples)
        }));
        let output = self.route.output.clone();
        let mut opening_sink = Some(tokio::task::spawn_blocking(move || {
            homeagent_audio::open_sink(&output, rate, samples)
        }));
        // Processing starts with the call, on the silence clocked until the devices open, so
        // the echo canceller runs on the same timeline as the frames.
        let mut processor = match self.route.processor(rate) {
            Ok(processor) => processor,
            Err(error) => {
                self.warn(format!("audio processing off: {error}")).await;
                None
            }
        };
        let mut mic = vec![0i16; samples];
        let mut speaker = vec![0i16; samples];
        let mut input_ended = false;
        self.apply(&self.params.clone());
        let mut clock = tokio::time::interval(Duration::from_millis(u64::from(
            self.params.ptime_ms.max(10),
        )));
        // A sound card plays every frame: after a stall, catch up rather than skip.
        clock.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut quality_clock =
            tokio::time::interval_at(Instant::now() + QUALITY_EVERY, QUALITY_EVERY);
        quality_clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut quality = QualityLog::default();
        let mut muted = false;
        let zip = if self.route.zip_tone {
            zip_tone(rate)
        } else {
            Vec::new()
        };
        let mut zip_played = 0;
        let mut rtp_buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 2048];
        let stats = loop {
            let ice_deadline = self
                .webrtc
                .as_mut()
                .and_then(|w| w.transport.poll_timeout());
            let deadline = [self.session.poll_timeout(), ice_deadline]
                .into_iter()
                .flatten()
                .min()
                .map(Instant::from_std);
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(MediaControl::Update(params)) => self.apply(&params),
                    Some(MediaControl::Mute(on)) => {
                        muted = on;
                        let _ = self.events.send(EngineEvent::Muted { call: self.call, muted }).await;
                    }
                    Some(MediaControl::Route { input, output }) => {
                        if let Some(input) = input {
                            self.route.input = input.clone();
                            opening_source = Some(tokio::task::spawn_blocking(move || {
                                homeagent_audio::open_source(&input, rate, samples)
                            }));
                        }
                        if let Some(output) = output {
                            self.route.output = output.clone();
                            opening_sink = Some(tokio::task::spawn_blocking(move || {
                                homeagent_audio::open_sink(&output, rate, samples)
                            }));
                        }
                    }
                    Some(MediaControl::SendDtmf(digits)) => {
                        let event = match self.session.send_dtmf(Instant::now().into_std(), &digits) {
                            Ok(()) => EngineEvent::DtmfSent { call: self.call, digits },
                            Err(error) => EngineEvent::Warning { message: format!("cannot send DTMF {digits:?}: {error}") },
                        };
                        let _ = self.events.send(event).await;
                    }
                    Some(MediaControl::Stop(reply)) => {
                        let stats = self.session.stats();
                        let _ = reply.send(CallStats::from_media(&stats, quality.mean_mos(&self.session)));
                        break stats;
                    }
                    None => break self.session.stats(),
                },
                opened = opened(&mut opening_source) => {
                    opening_source = None;
                    match opened {
                        Ok(device) => source = device,
                        Err(error) => self.warn(format!("cannot open audio input ({error}); sending silence")).await,
                    }
                }
                opened = opened(&mut opening_sink) => {
                    opening_sink = None;
                    match opened {
                        Ok(device) => {
                            // A switch: the old output finishes (a device plays out its last
                            // frames, a file gets its header) off the clock.
                            let mut old = std::mem::replace(&mut sink, device);
                            tokio::task::spawn_blocking(move || {
                                if let Err(error) = old.finish() {
                                    tracing::debug!(%error, "closing the previous audio output");
                                }
                            });
                        }
                        Err(error) => self.warn(format!("cannot open audio output ({error}); discarding audio")).await,
                    }
                }
                _ = quality_clock.tick() => {
                    let report = self.session.quality(Instant::now().into_std());
                    quality.record(&report);
                    let _ = self.events.send(EngineEvent::Quality { call: self.call, report }).await;
                }
                _ = clock.tick() => {
                    // Media that came before this tick plays in it, even when the task runs
                    // late (a busy machine) and the tick won the race with the socket.
                    self.drain_rtp(&mut rtp_buf);
                    let now = Instant::now().into_std();
                    match source.read_frame(&mut mic) {
                        Ok(SourceState::Data) => {}
                        Ok(SourceState::Ended) => {
                            if !input_ended {
                                input_ended = true;
                                let _ = self.events.send(EngineEvent::AudioInputEnded { call: self.call }).await;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "audio input failed; sending silence");
                            let message = format!("audio input failed, sending silence: {error}");
                            let _ = self.events.send(EngineEvent::Warning { message }).await;
                            source = silence(rate, samples);
                            mic.fill(0);
                        }
                    }
                    if let Some(processor) = processor.as_mut() {
                        processor.process_capture(&mut mic);
                    }
                    // Muted: the processing still runs (the echo canceller stays converged).
                    if muted {
                        mic.fill(0);
                    }
                    self.session.send_audio(now, &mic);
                    self.session.pull_audio(now, &mut speaker);
                    if let Some(rest) = zip.get(zip_played..).filter(|rest| !rest.is_empty()) {
                        let n = rest.len().min(speaker.len());
                        speaker.get_mut(..n).unwrap_or_default().copy_from_slice(rest.get(..n).unwrap_or_default());
                        zip_played += n;
                    }
                    if let Some(processor) = processor.as_mut() {
                        processor.process_render(&speaker);
                    }
                    if let Err(error) = sink.write_frame(&speaker) {
                        tracing::warn!(%error, "audio output failed; discarding audio");
                        let message = format!("audio output failed: {error}");
                        let _ = self.events.send(EngineEvent::Warning { message }).await;
                        sink = null_sink(rate, samples);
                    }
                }
                received = arrival::recv(&self.sockets.rtp, &mut rtp_buf) => {
                    if let Ok((n, from, at)) = received {
                        self.receive(at, from, rtp_buf.get(..n).unwrap_or_default(), false);
                    }
                }
                received = arrival::recv(&self.sockets.rtcp, &mut rtcp_buf) => {
                    if let Ok((n, from, at)) = received {
                        self.receive(at, from, rtcp_buf.get(..n).unwrap_or_default(), true);
                    }
                }
                message = turn_stream::next_message(
                    self.webrtc.as_mut().and_then(|w| w.turn_stream.as_deref_mut()),
                ) => {
                    let server = self.webrtc.as_ref().and_then(|w| w.turn_stream.as_ref()).map(|s| s.server());
                    if let (Some(message), Some(server)) = (message, server) {
                        self.receive(std::time::Instant::now(), server, &message, false);
                    }
                }
                _ = sleep_until(deadline) => {
                    let now = Instant::now().into_std();
                    self.session.handle_timeout(now);
                    if let Some(webrtc) = self.webrtc.as_mut() {
                        webrtc.transport.handle_timeout(now);
                    }
                }
            }
            self.flush().await;
        };
        if let Err(error) = sink.finish() {
            tracing::warn!(%error, "closing audio output");
        }
        tracing::debug!(
            call = %self.call,
            ?stats,
            input = ?source.stats(),
            output = ?sink.stats(),
            processing = ?processor.as_ref().map(|p| (p.config(), p.stats())),
            "media stopped"
        );
    }

    async fn warn(&mut self, message: String) {
        tracing::warn!("{message}");
        let _ = self.events.send(EngineEvent::Warning { message }).await;
    }

    /// Reads the RTP datagrams waiting in the socket (a bounded number: a flood cannot hold up
    /// the audio clock).
    fn drain_rtp(&mut self, buf: &mut [u8]) {
        for _ in 0..MAX_DRAINED {
            match arrival::try_recv(&self.sockets.rtp, buf) {
                Ok((n, from, at)) => {
                    self.receive(at, from, buf.get(..n).unwrap_or_default(), false)
                }
                Err(_) => break,
            }
        }
    }

    /// One datagram from the network, arrived at `now`: unprotected first when SRTP is on
    /// (what does not authenticate is dropped, counted, never played).
    fn receive(
        &mut self,
        now: std::time::Instant,
        from: SocketAddr,
        bytes: &[u8],
        rtcp_port: bool,
    ) {
        if let Some(webrtc) = self.webrtc.as_mut() {
            // STUN and DTLS stay in the transport; authentic media comes out in clear.
            if let Some(clear) = webrtc.transport.handle_datagram(now, from, bytes) {
                self.session.handle_packet(now, from, &clear);
            }
            return;
        }
        let Some(srtp) = self.srtp.as_mut() else {
            self.session.handle_packet(now, from, bytes);
            return;
        };
        let clear = if rtcp_port || homeagent_media::srtp::is_rtcp(bytes) {
            srtp.unprotect_rtcp(bytes)
        } else {
            srtp.unprotect_rtp(bytes)
        };
        match clear {
            Ok(clear) => self.session.handle_packet(now, from, &clear),
            Err(error) => tracing::trace!(%error, %from, "dropping SRTP packet"),
        }
    }

    fn apply(&mut self, params: &MediaParams) {
        // New keys from a re-negotiation (the same keys keep their rollover state).
        if params.srtp != self.params.srtp {
            match params.srtp.as_ref().map(SrtpTransform::new) {
                None => self.srtp = None,
                Some(Ok(srtp)) => self.srtp = Some(srtp),
                // Keys were checked in SDP; should it fail, the old keys stay (never clear).
                Some(Err(error)) => tracing::warn!(%error, "SRTP keys refused"),
            }
        }
        if let (Some(webrtc), Some(ice)) = (self.webrtc.as_mut(), params.ice.as_ref())
            && params.ice != self.params.ice
            && let Err(error) = webrtc.update(ice)
        {
            tracing::warn!(%error, "ICE/DTLS update refused");
        }
        // RFC 2198 redundancy, when both sides listed it (used on bursty loss).
        self.session
            .set_red(params.red.as_ref().map(|red| red.payload_type));
        self.session.set_sending(params.direction.sends());
        self.session.set_receiving(params.direction.receives());
        self.params = params.clone();
    }

    /// Sends what the session queued and forwards its events.
    async fn flush(&mut self) {
        while let Some(mut transmit) = self.session.poll_transmit() {
            if let Some(webrtc) = self.webrtc.as_mut() {
                let now = Instant::now().into_std();
                // Before DTLS is done or while ICE restarts: dropped, never sent in clear.
                if let Err(error) = webrtc
                    .transport
                    .send_media(now, &transmit.bytes, transmit.rtcp)
                {
                    tracing::trace!(%error, "media not sent");
                }
                continue;
            }
            if let Some(srtp) = self.srtp.as_mut() {
                let secured = if transmit.rtcp {
                    srtp.protect_rtcp(&transmit.bytes)
                } else {
                    srtp.protect_rtp(&transmit.bytes)
                };
                match secured {
                    Ok(bytes) => transmit.bytes = bytes,
                    Err(error) => {
                        // Never sent in clear.
                        tracing::debug!(%error, "SRTP protect failed; packet dropped");
                        continue;
                    }
                }
            }
            let to = if transmit.rtcp {
                self.params.remote_rtcp
            } else {
                self.params.remote_rtp
            };
            let socket = if transmit.rtcp {
                &self.sockets.rtcp
            } else {
                &self.sockets.rtp
            };
            if let Err(error) = socket.send_to(&transmit.bytes, to).await {
                tracing::debug!(%error, %to, "rtp send");
            }
        }
        self.flush_webrtc().await;
        while let Some(event) = self.session.poll_event() {
            match event {
                MediaEvent::DtmfReceived(digit) => {
                    let _ = self
                        .events
                        .send(EngineEvent::Dtmf {
                            call: self.call,
                            digit,
                        })
                        .await;
                }
                MediaEvent::RemoteAddress(addr) => self.latch(addr),
                _ => {}
            }
        }
    }

    /// Sends what ICE and DTLS queued and reports their progress.
    async fn flush_webrtc(&mut self) {
        let Some(webrtc) = self.webrtc.as_mut() else {
            return;
        };
        while let Some((to, bytes)) = webrtc.transport.poll_transmit() {
            // To the TURN server over its connection (nothing, once lost): never over UDP.
            if let Some(stream) = webrtc.turn_stream.as_mut().filter(|s| s.server() == to) {
                stream.send(&bytes).await;
            } else if let Err(error) = self.sockets.rtp.send_to(&bytes, to).await {
                tracing::debug!(%error, %to, "ICE/DTLS send");
            }
        }
        let mut notices = Vec::new();
        while let Some(event) = webrtc.transport.poll_event() {
            match event {
                WebRtcEvent::IceConnected { local, remote } => {
                    tracing::info!(%local, %remote, "ICE connected");
                    webrtc.pair = Some((local, remote));
                }
                WebRtcEvent::DtlsConnected { profile } => {
                    tracing::info!(%profile, "DTLS-SRTP keyed");
                    webrtc.profile = Some(profile);
                }
                WebRtcEvent::Failed(reason) => {
                    notices.push(EngineEvent::Warning {
                        message: format!(
                            "call media cannot connect (ICE/DTLS), hanging up: {reason}"
                        ),
                    });
                    let _ = webrtc.failed.try_send(self.call);
                }
                WebRtcEvent::Disconnected => {
                    tracing::warn!("ICE consent lost on the selected pair");
                }
                WebRtcEvent::Closed => tracing::info!("the peer closed DTLS"),
                other => tracing::debug!(?other, "ICE/DTLS"),
            }
        }
        if !webrtc.reported {
            // DTLS may finish before our side nominated: the pair the media goes over then.
            let pair = webrtc
                .pair
                .clone()
                .or_else(|| webrtc.transport.selected_pair());
            if let (Some((local, remote)), Some(srtp)) = (pair, webrtc.profile) {
                webrtc.reported = true;
                notices.push(EngineEvent::IceConnected {
                    call: self.call,
                    local,
                    remote,
                    srtp,
                });
            }
        }
        for notice in notices {
            let _ = self.events.send(notice).await;
        }
    }

    /// Symmetric RTP: send to where the peer's RTP really comes from (NAT).
    fn latch(&mut self, addr: SocketAddr) {
        if addr != self.params.remote_rtp {
            tracing::debug!(from = %self.params.remote_rtp, to = %addr, "latching remote RTP address");
            if !self.params.rtcp_mux {
                self.params.remote_rtcp = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1));
            }
            self.params.remote_rtp = addr;
        }
    }
}

/// Waits for a device being opened on a blocking thread; forever once it has been.
async fn opened<T>(opening: &mut Option<JoinHandle<Result<T, AudioError>>>) -> Result<T, String> {
    match opening {
        Some(handle) => match handle.await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        },
        None => std::future::pending().await,
    }
}

/// The zip tone: two short 1 kHz beeps (60 ms, 40 ms apart) at about -14 dBFS, with 5 ms
/// ramps, as contact-center headsets play when a call connects by itself.
fn zip_tone(rate: u32) -> Vec<i16> {
    let ms = |n: u32| (rate / 1000 * n) as usize;
    let (beep, gap, ramp) = (ms(60), ms(40), ms(5).max(1));
    let amplitude = 0.2 * f64::from(i16::MAX);
    let mut tone = Vec::with_capacity(2 * beep + gap);
    for burst in 0..2 {
        if burst == 1 {
            tone.extend(std::iter::repeat_n(0, gap));
        }
        for i in 0..beep {
            let envelope = (i.min(beep - 1 - i) as f64 / ramp as f64).min(1.0);
            let phase = std::f64::consts::TAU * 1000.0 * i as f64 / f64::from(rate);
            tone.push((amplitude * envelope * phase.sin()) as i16);
        }
    }
    tone
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn silence(rate: u32, samples: usize) -> Box<dyn AudioSource> {
    // Invariant: `rate`/`samples` come from a MediaSession and are valid audio parameters.
    homeagent_audio::open_source(&SourceSpec::Silence, rate, samples)
        .expect("silence source always opens")
}

fn null_sink(rate: u32, samples: usize) -> Box<dyn AudioSink> {
    // Invariant: as for `silence`.
    homeagent_audio::open_sink(&SinkSpec::Null, rate, samples).expect("null sink always opens")
}

/// How often a call reports its live quality (MOS, loss, jitter, RTT).
const QUALITY_EVERY: Duration = Duration::from_secs(5);
/// The most RTP datagrams read at one audio tick before playing (a second of 20 ms packets).
const MAX_DRAINED: usize = 50;

/// The MOS figures reported during a call, for its summary.
#[derive(Debug, Default)]
struct QualityLog {
    sum: f64,
    count: u32,
}

impl QualityLog {
    fn record(&mut self, report: &QualityReport) {
        self.sum += report.mos;
        self.count += 1;
    }

    /// The mean of the reported MOS; for a call shorter than one report, its current MOS.
    fn mean_mos(&self, session: &MediaSession) -> Option<f64> {
        if self.count > 0 {
            return Some(self.sum / f64::from(self.count));
        }
        let stats = session.stats();
        (stats.packets_received > 0).then(|| session.quality(Instant::now().into_std()).mos)
    }
}

/// Figures of a finished call for the front end.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    pub codec: Option<CodecKind>,
    /// From establishment to end.
    pub duration: Duration,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// Mean of the live MOS estimates over the call (E-model, ITU-T G.107).
    pub mos: Option<f64>,
}

impl CallStats {
    pub(crate) fn from_media(stats: &MediaStats, mos: Option<f64>) -> Self {
        Self {
            codec: Some(stats.codec),
            duration: Duration::ZERO,
            mos,
            packets_sent: stats.packets_sent,
            packets_received: stats.packets_received,
            packets_lost: u64::try_from(stats.packets_lost).unwrap_or(0),
            jitter_ms: stats.jitter_ms,
            rtt_ms: stats.rtt_ms,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use homeagent_core::{CallId, CodecKind, Direction, MediaParams};
    use homeagent_media::CodecSpec;
    use tokio::net::UdpSocket;
    use tokio::sync::{mpsc, oneshot};

    use super::*;

    #[test]
    fn processing_follows_the_route() {
        let files = AudioRoute {
            input: SourceSpec::Wav("in.wav".into()),
            output: SinkSpec::Null,
            processing: ProcessingSettings::default(),
            zip_tone: false,
        };
        assert!(files.processor(48_000).unwrap().is_none());
        let forced = AudioRoute {
            processing: ProcessingSettings {
                echo_cancellation: Some(true),
                ..ProcessingSettings::default()
            },
            ..files.clone()
        };
        let processor = forced.processor(8_000).unwrap().expect("forced on");
        assert!(processor.config().echo_cancellation);
        assert!(!processor.config().noise_suppression);
        let devices = AudioRoute {
            input: SourceSpec::Device(homeagent_audio::DeviceSelector::Default),
            ..files.clone()
        };
        let processor = devices.processor(16_000).unwrap().expect("on for a device");
        assert_eq!(processor.config(), homeagent_audio::ProcessingConfig::ALL);
        assert!(forced.processor(22_050).is_err());
    }

    /// An audio device that takes long to open must not hold up the call: RTP flows from the
    /// first ticks, and the device joins (here: fails, and is reported) when its open returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn media_runs_while_the_audio_opens() {
        // Opening a FIFO for reading blocks until a writer opens it: a source whose open takes
        // as long as the test wants.
        let dir = std::env::temp_dir().join(format!("homeagent-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("mic.wav");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|status| status.success()), "mkfifo");

        let (peer, _peer_rtcp, sockets, params) = pcmu_call().await;
        let route = AudioRoute {
            input: SourceSpec::Wav(fifo.clone()),
            output: SinkSpec::Null,
            processing: ProcessingSettings::default(),
            zip_tone: false,
        };
        let (events_tx, mut events) = mpsc::channel(16);
        let control = spawn(CallId(1), sockets, params, route, None, events_tx).unwrap();

        // 300 ms of ticks while the source is still opening.
        let mut packets = 0;
        let mut buf = [0u8; 2048];
        let window = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => break,
                received = peer.recv_from(&mut buf) => {
                    if received.is_ok() {
                        packets += 1;
                    }
                }
            }
        }

        // Let the open return: a writer that closes at once gives the reader an empty file.
        let writer = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .map(drop)
        });
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the media task opens the FIFO")
            .unwrap()
            .unwrap();
        let warning = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("a warning once the open fails");
        let (reply, stats) = oneshot::channel();
        control.send(MediaControl::Stop(reply)).await.unwrap();
        let stats = stats.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        assert!(packets >= 8, "{packets} RTP packets in 300 ms of opening");
        match warning {
            Some(EngineEvent::Warning { message }) => {
                assert!(message.contains("cannot open audio input"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(stats.packets_sent >= packets, "{stats:?}");
    }

    /// A headset plugged in during a call: the input switches without a break in the RTP
    /// stream (silence before, the new source's sound after), and so does the output.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn devices_switch_during_a_call() {
        let (peer, _peer_rtcp, sockets, params) = pcmu_call().await;
        let dir = std::env::temp_dir().join(format!("homeagent-switch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let recording = dir.join("speaker.wav");
        let route = AudioRoute {
            input: SourceSpec::Silence,
            output: SinkSpec::Null,
            processing: ProcessingSettings::default(),
            zip_tone: false,
        };
        let (events_tx, _events) = mpsc::channel(64);
        let control = spawn(CallId(1), sockets, params, route, None, events_tx).unwrap();
        let mut buf = [0u8; 2048];
        // PCMU silence is 0xFF (or 0x7F); a 1 kHz tone is not.
        let mut loud_payload = async |count: usize| {
            let mut loud = Vec::new();
            for _ in 0..count {
                let (n, from) =
                    tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf))
                        .await
                        .expect("RTP keeps flowing")
                        .unwrap();
                let payload = buf.get(12..n).unwrap_or_default();
                loud.push(
                    payload.iter().filter(|b| **b & 0x7F != 0x7F).count() > payload.len() / 2,
                );
                // Something for the output to play: the packet back, as another source.
                if let Some(ssrc) = buf.get_mut(8..12) {
                    ssrc.copy_from_slice(&[1, 2, 3, 4]);
                }
                let _ = peer.send_to(buf.get(..n).unwrap_or_default(), from).await;
            }
            loud
        };
        assert!(
            loud_payload(10).await.iter().all(|loud| !loud),
            "silence first"
        );
        control
            .send(MediaControl::Route {
                input: Some(SourceSpec::Tone { hz: 1000.0 }),
                output: Some(SinkSpec::Wav(recording.clone())),
            })
            .await
            .unwrap();
        let after = loud_payload(25).await;
        let (reply, stats) = oneshot::channel();
        control.send(MediaControl::Stop(reply)).await.unwrap();
        let stats = stats.await.unwrap();
        assert!(
            after.iter().rev().take(10).all(|loud| *loud),
            "tone after the switch: {after:?}"
        );
        assert!(stats.packets_received > 0, "{stats:?}");
        // The new output got the audio (finished by the task once stopped).
        let mut written = 0;
        for _ in 0..40 {
            written = std::fs::metadata(&recording).map(|m| m.len()).unwrap_or(0);
            if written > 44 + 160 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            written > 44 + 160,
            "{written} bytes written to the new output"
        );
    }

    /// A call answered by itself starts with the zip tone in the speaker, then the call's
    /// audio (here: silence).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_auto_answered_call_starts_with_the_zip_tone() {
        let dir = std::env::temp_dir().join(format!("homeagent-zip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let heard = |zip: bool| {
            let dir = dir.clone();
            async move {
                let (_peer, _peer_rtcp, sockets, params) = pcmu_call().await;
                let file = dir.join(format!("heard-{zip}.wav"));
                let route = recorded(&file, zip);
                let (events_tx, _events) = mpsc::channel(64);
                let control = spawn(CallId(1), sockets, params, route, None, events_tx).unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (reply, stats) = oneshot::channel();
                control.send(MediaControl::Stop(reply)).await.unwrap();
                let _ = stats.await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                wav_samples(&file)
            }
        };
        let with = heard(true).await;
        let without = heard(false).await;
        let _ = std::fs::remove_dir_all(&dir);
        let peak = |samples: &[i16]| samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        // 8 kHz: the first 160 ms are 1280 samples.
        assert!(with.len() > 1600, "{} samples", with.len());
        assert!(peak(&with[..1280]) > 5000, "zip tone heard");
        assert!(peak(&with[1400..]) < 100, "then the call's silence");
        assert!(peak(&without) < 100, "no tone otherwise");
    }

    /// A media task held up by a busy machine (here its only thread blocks for 100 ms while
    /// the peer goes on sending) plays the packets that waited on the ticks it catches up
    /// with: nothing is concealed, and the buffer does not grow for a delay the network never
    /// had (arrival times are the kernel's). Each packet is one constant level, so every frame
    /// heard names the packet it came from.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stalled_task_plays_the_packets_that_waited() {
        use homeagent_media::codec::ulaw_to_linear;
        const PACKETS: u16 = 50;
        let code = |index: u16| 0x90 + u8::try_from(index).unwrap();
        let dir = std::env::temp_dir().join(format!("homeagent-stall-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("heard.wav");
        let (peer, _peer_rtcp, sockets, params) = pcmu_call().await;
        let target = sockets.rtp.local_addr().unwrap();
        let route = recorded(&file, false);
        let (events_tx, _events) = mpsc::channel(64);
        let control = spawn(CallId(1), sockets, params, route, None, events_tx).unwrap();

        // The peer sends from its own thread, on its own clock; its first packets vary by 8 ms,
        // so that the buffer keeps a margin for this thread's own scheduling noise.
        let peer = peer.into_std().unwrap();
        let sender = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            for index in 0..PACKETS {
                let late = if index < 12 && index % 3 == 1 { 8 } else { 0 };
                let due = start + Duration::from_millis(u64::from(index) * 20 + late);
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                let payload = [code(index); 160];
                let mut packet = Vec::new();
                homeagent_media::rtp::RtpPacket {
                    marker: false,
                    payload_type: 0,
                    sequence: index,
                    timestamp: u32::from(index) * 160,
                    ssrc: 0x5eed,
                    csrcs: Vec::new(),
                    extension: None,
                    payload: &payload,
                }
                .write(&mut packet);
                peer.send_to(&packet, target).unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Blocks the runtime's only thread: the media task stalls for five packets.
        std::thread::sleep(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(700)).await;
        sender.join().unwrap();
        let (reply, stats) = oneshot::channel();
        control.send(MediaControl::Stop(reply)).await.unwrap();
        let stats = stats.await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let samples = wav_samples(&file);
        let _ = std::fs::remove_dir_all(&dir);

        assert_eq!(stats.packets_received, u64::from(PACKETS));
        // Each 20 ms frame heard: the packet whose level it is, or None (silence, concealment).
        // The G.711 decoder keeps 3.75 ms of history for its concealment: a frame's first 30
        // samples are the end of the one before.
        let heard: Vec<Option<u16>> = samples
            .chunks_exact(160)
            .map(|frame| {
                (0..PACKETS).find(|&index| {
                    frame[30..]
                        .iter()
                        .all(|&sample| sample == ulaw_to_linear(code(index)))
                })
            })
            .collect();
        // Once the buffer has learnt the sender's jitter (its first late packet is concealed),
        // each frame is the next packet's, through the stall, up to the last but one (the
        // concealment after the last reshapes the end of its frame).
        let learnt = heard
            .iter()
            .position(|&frame| frame == Some(2))
            .expect("heard");
        let played: Vec<Option<u16>> = heard[learnt..]
            .iter()
            .copied()
            .take(usize::from(PACKETS) - 3)
            .collect();
        let expected: Vec<Option<u16>> = (2..PACKETS - 1).map(Some).collect();
        assert_eq!(played, expected, "heard {heard:?}");
    }

    /// Silence to the peer; what the speaker plays is recorded in `file`.
    fn recorded(file: &std::path::Path, zip_tone: bool) -> AudioRoute {
        AudioRoute {
            input: SourceSpec::Silence,
            output: SinkSpec::Wav(file.to_owned()),
            processing: ProcessingSettings::default(),
            zip_tone,
        }
    }

    /// The samples of a WAV file the sink wrote (16-bit mono after a 44-byte header).
    fn wav_samples(file: &std::path::Path) -> Vec<i16> {
        let bytes = std::fs::read(file).unwrap_or_default();
        bytes
            .get(44..)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    async fn pcmu_call() -> (UdpSocket, UdpSocket, MediaSockets, MediaParams) {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer_rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sockets = MediaSockets {
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtcp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            relay: None,
            turn_stream: None,
        };
        let params = MediaParams {
            codec: CodecSpec {
                payload_type: 0,
                name: "PCMU".to_owned(),
                clock_rate: 8000,
                channels: 1,
                fmtp: None,
            },
            kind: CodecKind::Pcmu,
            dtmf: None,
            remote_rtp: peer.local_addr().unwrap(),
            remote_rtcp: peer_rtcp.local_addr().unwrap(),
            rtcp_mux: false,
            direction: Direction::SendRecv,
            ptime_ms: 20,
            remote_ssrc: None,
            red: None,
            comfort_noise: None,
            srtp: None,
            ice: None,
        };
        (peer, peer_rtcp, sockets, params)
    }
}
