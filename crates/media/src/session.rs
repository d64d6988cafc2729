//! [`MediaSession`]: one call's audio stream, the object the driver owns.
//!
//! Contract (str0m style): feed it [`MediaSession::send_audio`] once per ptime with microphone
//! PCM, [`MediaSession::handle_packet`] with every datagram from the media socket, and
//! [`MediaSession::handle_timeout`] when [`MediaSession::poll_timeout`] passes; pull speaker PCM
//! with [`MediaSession::pull_audio`] once per ptime. After each call drain
//! [`MediaSession::poll_transmit`] (datagrams to send to the latched remote address) and
//! [`MediaSession::poll_event`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::codec::{self, AudioDecoder, AudioEncoder, CodecError};
use crate::comfort_noise::{self, CN_PAYLOAD_TYPE, ComfortNoise, SilenceDetector};
use crate::dtmf::{DtmfReceiver, DtmfSender, InvalidDigit};
use crate::jitter::{self, JitterBuffer, JitterStats, Playout};
use crate::quality::{
    self, EModelInput, FrameOutcome, QualityMonitor, QualityReport, WindowFigures,
};
use crate::red::{self, RedHistory};
use crate::rtcp::{self, RtcpPacket};
use crate::rtp::{self, RtpPacket};
use crate::rtp_session::{RtpSession, SequenceStatus};
use crate::{CodecKind, CodecSpec};

/// A gap this long between two [`MediaSession::send_audio`] calls moves the RTP timeline by the
/// elapsed time (the driver stopped sending, e.g. on hold).
const SEND_GAP_MS: u128 = 500;
/// The encoder's expected loss (Opus FEC strength) before the remote's first RTCP report and
/// for at least [`LOSS_PROTECTION`] into the call: calls start protected.
const INITIAL_LOSS_PERCENT: u8 = 10;
const LOSS_PROTECTION: Duration = Duration::from_secs(10);
/// Opus FEC is worth its bits even when the remote reports no loss.
const MIN_LOSS_PERCENT: u8 = 2;
/// Beyond this, more redundancy costs more quality than it saves.
const MAX_LOSS_PERCENT: u8 = 25;
/// With Opus, once the network loses packets, the jitter buffer keeps this many packets beyond
/// the one playing, so a lost packet can be rebuilt from the next one's in-band FEC...
const FEC_LOOKAHEAD_FRAMES: u32 = 1;
/// ...until this long passes without loss; then the delay shrinks back (clean calls keep the
/// lowest delay; the first loss of a lossy period is concealed, later ones recovered).
/// Packets of look-ahead while the incoming loss comes in bursts: the packet after a burst of
/// up to this many is here in time to rebuild it from its deep redundancy (Opus DRED).
const DRED_LOOKAHEAD_FRAMES: u32 = 4;
const FEC_LOOKAHEAD_HOLD: Duration = Duration::from_secs(20);
/// RFC 2198 RED (when negotiated): copies of the four previous frames in each packet (a burst
/// of four comes back whole; [`red::MAX_DISTANCE`]) once the remote reports this much loss AND the loss we see on its
/// stream comes in bursts (the same link, usually the same pattern). Random loss is left to
/// Opus in-band FEC: at about the same total bitrate it scores better (in-memory speech bench,
/// 10 % random loss: PESQ-WB 3.66 with FEC at 48 kbit/s, 3.49 with two copies at 21 kbit/s,
/// 3.60 with one at 32); with bursts (10 %, mean 3) three copies at 18 kbit/s score 2.86
/// against 2.17 for FEC alone, 2.43 for two copies at 21 and 2.63 for three at 16.
const RED_MIN_LOSS_PERCENT: u8 = 2;
/// With G.711 (no in-band FEC) RED is the only protection, so it is used under any reported
/// loss from [`RED_MIN_LOSS_PERCENT`]: one copy (+64 kbit/s) when the loss is random, two
/// (+128 kbit/s, 192 in all) when it comes in bursts, which brings runs of two back whole; a
/// third copy would take the stream to 256 kbit/s for the rarer longer runs.
const G711_RED_COPIES_RANDOM: u8 = 1;
const G711_RED_COPIES_BURSTY: u8 = 2;
/// Mean loss-run length (packets) from which loss counts as bursty; random loss at 10 % gives
/// 1.1, a Gilbert channel with mean burst 3 about 3.
const BURSTY_MEAN_RUN: f64 = 1.6;
/// With RED negotiated, each RTCP report carries an APP packet (RFC 3550 §6.7) with this name
/// and subtype telling the sender how our losses of its stream come (mean run length in 1/256
/// packets, then the number of runs seen, 16 bits each): the loss that matters for its RED
/// choice is on its stream, which only we see. Peers that don't know the name ignore it.
const LOSS_RUNS_APP_NAME: [u8; 4] = *b"HALR";
const LOSS_RUNS_APP_SUBTYPE: u8 = 0;
/// Weight of the past per loss run in [`LossRuns`] (about the last 20 runs count).
const LOSS_RUN_DECAY: f64 = 0.95;
/// A loss count must hold for this many pulls (300 ms at 20 ms) to count: reordering delays
/// packets by less.
const LOSS_SETTLE_PULLS: usize = 15;
/// While our microphone is silent, a new RFC 3389 CN packet goes out when the level moves this
/// much (dB)...
const CN_LEVEL_STEP_DB: u8 = 2;
/// ...or this long after the last one.
const CN_REFRESH: Duration = Duration::from_millis(200);
/// Decode attempts per pulled frame before giving up and playing silence.
const MAX_PULLS_PER_FRAME: usize = 8;

/// What a media session is built from (the negotiated SDP plus random start values).
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The negotiated audio codec (payload type, clock rate).
    pub codec: CodecSpec,
    pub kind: CodecKind,
    /// The negotiated `telephone-event`, if any.
    pub dtmf: Option<CodecSpec>,
    /// Packet duration in ms (10, 20, 40 or 60; 30 too for G.711).
    pub ptime_ms: u32,
    /// Random (RFC 3550 §8.1).
    pub ssrc: u32,
    /// Random (RFC 3550 §5.1).
    pub initial_seq: u16,
    /// Random (RFC 3550 §5.1).
    pub initial_timestamp: u32,
    /// RTCP CNAME, e.g. `agent01@laptop`.
    pub cname: String,
    /// Wall-clock time at `now` for SR NTP timestamps; `None` counts from the session start.
    pub wallclock: Option<SystemTime>,
}

/// Why a session cannot be built or a request cannot be honoured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("ptime {ptime_ms} ms is not supported by {kind}")]
    Ptime { kind: CodecKind, ptime_ms: u32 },
    #[error("clock rate {clock_rate} Hz does not fit {kind}")]
    ClockRate { kind: CodecKind, clock_rate: u32 },
    #[error("telephone-event was not negotiated")]
    DtmfNotNegotiated,
    #[error(transparent)]
    InvalidDigit(#[from] InvalidDigit),
}

/// A datagram to send to the remote media address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTransmit {
    /// RTCP (send to the RTCP address when RTCP is not muxed).
    pub rtcp: bool,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A DTMF digit from the remote (RFC 4733), reported once.
    DtmfReceived(char),
    /// RTP now comes from this address: send there (symmetric RTP, RFC 4961).
    RemoteAddress(SocketAddr),
    /// The remote stream started or changed SSRC.
    RemoteSource(u32),
    /// The remote sent RTCP BYE.
    RemoteBye,
}

/// Counters and estimates for diagnostics and the quality indicator.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MediaStats {
    pub codec: CodecKind,
    pub packets_sent: u64,
    pub octets_sent: u64,
    pub packets_received: u64,
    /// Cumulative lost packets of the remote stream (RFC 3550 A.3).
    pub packets_lost: i64,
    /// Loss fraction over the last RTCP interval, 0.0..=1.0.
    pub fraction_lost: f64,
    /// Interarrival jitter of the remote stream.
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// The remote's view of our stream, from its last report.
    pub remote_fraction_lost: Option<f64>,
    pub remote_packets_lost: Option<i64>,
    pub remote_jitter_ms: Option<f64>,
    /// Current and target playout delay of the jitter buffer.
    pub playout_delay_ms: f64,
    pub target_delay_ms: f64,
    pub jitter_buffer: JitterStats,
    /// Lost frames rebuilt from the next packet's in-band FEC.
    pub fec_recovered: u64,
    /// Lost frames rebuilt from the redundant copies of an RFC 2198 RED packet.
    pub red_recovered: u64,
    /// Lost frames rebuilt from the deep redundancy (Opus DRED) of a later packet.
    pub dred_recovered: u64,
    /// The loss our encoder protects against (Opus FEC strength), from the remote's reports.
    pub expected_loss_percent: u8,
    /// Frames of RFC 3389 comfort noise played during the remote's silences.
    pub comfort_noise_frames: u64,
    /// Frames the remote did not send because it was silent (Opus DTX, or G.711 after an RFC
    /// 3389 CN packet: those also count in `comfort_noise_frames`), played as comfort noise;
    /// neither lost nor concealed.
    pub dtx_frames_received: u64,
    /// Frames we did not send because the microphone was silent (Opus DTX, or G.711 replaced
    /// by RFC 3389 comfort noise).
    pub dtx_frames_sent: u64,
    /// RFC 3389 comfort-noise packets we sent during our silences.
    pub comfort_noise_sent: u64,
    /// Datagrams that were neither valid RTP nor RTCP, or had an unknown payload type.
    pub packets_discarded: u64,
    pub dtmf_sent: u64,
    pub dtmf_received: u64,
}

#[derive(Debug)]
pub struct MediaSession {
    kind: CodecKind,
    payload_type: u8,
    dtmf_payload_type: Option<u8>,
    sample_rate: u32,
    clock_rate: u32,
    frame_samples: usize,
    /// One frame in RTP timestamp units.
    frame_units: u32,
    encoder: Box<dyn AudioEncoder>,
    decoder: Box<dyn AudioDecoder>,
    rtp: RtpSession,
    jitter: JitterBuffer,
    dtmf_sender: Option<DtmfSender>,
    dtmf_receiver: DtmfReceiver,
    sending: bool,
    receiving: bool,
    last_audio_at: Option<Instant>,
    remote_address: Option<SocketAddr>,
    /// Decoded PCM not yet played (a packet may be longer than one pulled frame).
    pcm: Vec<i16>,
    /// Samples in the last decoded packet: the length to conceal for a lost one.
    packet_samples: usize,
    payload: Vec<u8>,
    transmits: VecDeque<MediaTransmit>,
    events: VecDeque<MediaEvent>,
    ptime_ms: u32,
    quality: QualityMonitor,
    expected_loss: ExpectedLoss,
    /// Opus: the remote stream's loss count at the last pulls (a reordered packet counts as
    /// lost until it arrives: only a count that stays up is loss), the settled count, and when
    /// it last grew.
    lost_history: VecDeque<i64>,
    lost_seen: i64,
    last_loss_at: Option<Instant>,
    /// Packets the jitter buffer keeps beyond the one playing (0 on a clean network).
    lookahead_frames: u32,
    /// RFC 2198 RED: the negotiated payload type, what we sent last, how many earlier frames
    /// each packet repeats, and the most the remote's packets repeated (frames).
    red_payload_type: Option<u8>,
    red_history: RedHistory,
    red_payload: Vec<u8>,
    red_copies: u8,
    /// How the remote's packets are lost: in runs or one at a time.
    loss_runs: LossRuns,
    /// The mean loss run the remote reports about our stream (its APP packet), when it does.
    remote_mean_run: Option<f64>,
    /// The remote's last two loss reports (percent): RED follows the higher. Until two have
    /// come, [`INITIAL_LOSS_PERCENT`] stands in: a call starts protected (with G.711, one copy
    /// until the reports show a clean path).
    red_reports: [u8; 2],
    /// Loss reports received (counting up to 2).
    red_reports_seen: u8,
    remote_red_distance: u32,
    /// RFC 3389 comfort noise (G.711 only); `comfort_noise_active` while the remote is in a
    /// silence it announced with CN (the last packet received was CN).
    comfort_noise: ComfortNoise,
    comfort_noise_active: bool,
    comfort_noise_frames: u64,
    /// Opus DTX frames not sent (see [`MediaStats::dtx_frames_sent`]).
    dtx_frames_sent: u64,
    /// RFC 3389 CN sending (G.711, when negotiated): its payload type, the silence detector,
    /// and the level and time of the last CN packet of the current silence.
    comfort_noise_payload_type: Option<u8>,
    silence: SilenceDetector,
    /// Judges received G.711 packets speech or silence, so the jitter buffer shrinks in pauses.
    remote_silence: SilenceDetector,
    comfort_noise_level: Option<(u8, Instant)>,
    comfort_noise_sent: u64,
    fec_recovered: u64,
    dred_recovered: u64,
    /// Our encoder sends Opus DRED (bursty loss reported; with RED too).
    dred_on: bool,
    packets_discarded: u64,
    dtmf_sent: u64,
    dtmf_received: u64,
}

impl MediaSession {
    pub fn new(config: MediaConfig, now: Instant) -> Result<Self, MediaError> {
        let kind = config.kind;
        let ptime_ok = match kind {
            CodecKind::Opus => [10, 20, 40, 60].contains(&config.ptime_ms),
            CodecKind::Pcmu | CodecKind::Pcma => [10, 20, 30, 40, 60].contains(&config.ptime_ms),
        };
        if !ptime_ok {
            return Err(MediaError::Ptime {
                kind,
                ptime_ms: config.ptime_ms,
            });
        }
        let clock_rate = config.codec.clock_rate;
        if clock_rate != kind.sample_rate() {
            return Err(MediaError::ClockRate { kind, clock_rate });
        }
        let sample_rate = kind.sample_rate();
        let frame_samples = (sample_rate * config.ptime_ms / 1000) as usize;
        let frame_units = clock_rate * config.ptime_ms / 1000;
        let rtp = RtpSession::new(
            now,
            config.ssrc,
            config.initial_seq,
            config.initial_timestamp,
            clock_rate,
            config.cname,
            config.wallclock,
        );
        let jitter = JitterBuffer::new(clock_rate, frame_units);
        let mut encoder = codec::new_encoder(kind)?;
        encoder.set_packet_loss_percent(INITIAL_LOSS_PERCENT);
        Ok(Self {
            kind,
            payload_type: config.codec.payload_type,
            dtmf_payload_type: config.dtmf.as_ref().map(|d| d.payload_type),
            sample_rate,
            clock_rate,
            frame_samples,
            frame_units,
            encoder,
            decoder: codec::new_decoder(kind)?,
            rtp,
            jitter,
            dtmf_sender: config.dtmf.map(|d| DtmfSender::new(d.clock_rate)),
            dtmf_receiver: DtmfReceiver::new(),
            sending: true,
            receiving: true,
            last_audio_at: None,
            remote_address: None,
            pcm: Vec::with_capacity(frame_samples * 4),
            packet_samples: frame_samples,
            payload: Vec::with_capacity(1500),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ptime_ms: config.ptime_ms,
            quality: QualityMonitor::new(now),
            expected_loss: ExpectedLoss::new(now),
            lost_history: VecDeque::with_capacity(LOSS_SETTLE_PULLS),
            lost_seen: 0,
            last_loss_at: None,
            lookahead_frames: 0,
            red_payload_type: None,
            red_history: RedHistory::new(),
            red_payload: Vec::with_capacity(1500),
            red_copies: 0,
            loss_runs: LossRuns::default(),
            remote_mean_run: None,
            red_reports: [INITIAL_LOSS_PERCENT; 2],
            red_reports_seen: 0,
            remote_red_distance: 0,
            comfort_noise: ComfortNoise::new(config.ssrc.rotate_left(16)),
            comfort_noise_active: false,
            comfort_noise_frames: 0,
            dtx_frames_sent: 0,
            comfort_noise_payload_type: None,
            silence: SilenceDetector::new(config.ptime_ms),
            remote_silence: SilenceDetector::new(config.ptime_ms),
            comfort_noise_level: None,
            comfort_noise_sent: 0,
            fec_recovered: 0,
            dred_recovered: 0,
            dred_on: false,
            packets_discarded: 0,
            dtmf_sent: 0,
            dtmf_received: 0,
        })
    }

    /// The PCM rate the application provides and receives (mono).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples in one ptime frame at [`Self::sample_rate`].
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    pub fn ssrc(&self) -> u32 {
        self.rtp.ssrc()
    }

    /// Encodes one ptime frame of mono PCM and queues its RTP packet. Nothing is sent on hold or
    /// while DTMF plays, but the RTP timeline keeps moving. A frame of the wrong length is
    /// dropped.
    pub fn send_audio(&mut self, now: Instant, pcm: &[i16]) {
        if pcm.len() != self.frame_samples {
            tracing::warn!(
                got = pcm.len(),
                expected = self.frame_samples,
                "media: dropping audio frame of the wrong length"
            );
            return;
        }
        if let Some(last) = self.last_audio_at {
            let gap_ms = now.saturating_duration_since(last).as_millis();
            if gap_ms > SEND_GAP_MS {
                let frames = gap_ms / u128::from(self.frame_units * 1000 / self.clock_rate).max(1);
                let skipped = (frames.saturating_sub(1) as u32).saturating_mul(self.frame_units);
                self.rtp.skip(skipped);
            }
        }
        self.last_audio_at = Some(now);
        let dtmf_busy = self.dtmf_sender.as_ref().is_some_and(DtmfSender::is_busy);
        if !self.sending || dtmf_busy {
            self.rtp.skip(self.frame_units);
            return;
        }
        if self.send_comfort_noise(now, pcm) {
            return;
        }
        self.payload.clear();
        if let Err(error) = self.encoder.encode(pcm, &mut self.payload) {
            tracing::warn!(%error, "media: encode failed");
            self.rtp.skip(self.frame_units);
            return;
        }
        if codec::is_dtx_payload(self.kind, &self.payload) {
            // Silence in DTX: the timeline moves on, the next packet starts a talkspurt.
            self.dtx_frames_sent += 1;
            self.rtp.skip(self.frame_units);
            return;
        }
        let bytes = match self.red_payload_type {
            Some(red_payload_type) => {
                self.red_payload.clear();
                let copies = self.red_history.packetize(
                    self.payload_type,
                    self.rtp.next_timestamp(),
                    self.frame_units,
                    &self.payload,
                    usize::from(self.red_copies),
                    &mut self.red_payload,
                );
                if copies > 0 {
                    self.rtp
                        .send_media(now, red_payload_type, self.frame_units, &self.red_payload)
                } else {
                    self.rtp
                        .send_media(now, self.payload_type, self.frame_units, &self.payload)
                }
            }
            None => self
                .rtp
                .send_media(now, self.payload_type, self.frame_units, &self.payload),
        };
        self.transmits
            .push_back(MediaTransmit { rtcp: false, bytes });
    }

    /// Queues DTMF digits (`0-9 * # A-D`), played one after another as RFC 4733 events.
    pub fn send_dtmf(&mut self, now: Instant, digits: &str) -> Result<(), MediaError> {
        let sender = self
            .dtmf_sender
            .as_mut()
            .ok_or(MediaError::DtmfNotNegotiated)?;
        sender.enqueue(now, digits)?;
        self.drive_dtmf(now);
        Ok(())
    }

    /// Sends Opus in-band FEC (on by default), e.g. off when the remote's SDP says
    /// `useinbandfec=0`. No effect on G.711.
    pub fn set_inband_fec(&mut self, enabled: bool) {
        self.encoder.set_inband_fec(enabled);
    }

    /// Opus discontinuous transmission (off by default): turn it on when the remote's `fmtp`
    /// says `usedtx=1` (`codec.fmtp_flag("usedtx")`, [`CodecSpec::fmtp_flag`]). Silent frames are then not sent (every
    /// 400 ms one refreshes the remote's comfort noise); the next packet carries the marker bit.
    /// Received DTX is always handled. No effect on G.711.
    pub fn set_dtx(&mut self, enabled: bool) {
        self.encoder.set_dtx(enabled);
    }

    /// RFC 3389 comfort noise ([`crate::sdp::Negotiated::comfort_noise`]): with
    /// `Some(payload_type)`, once the microphone has been quiet for 200 ms (an energy detector
    /// with an adaptive noise floor) frames are not sent; a CN packet carrying the noise level
    /// goes out instead when the level moves by 2 dB or every 200 ms; speech resumes with the
    /// marker bit. `None` (the default): every frame is sent. G.711 only; no effect on Opus.
    /// Received CN is always played.
    pub fn set_comfort_noise(&mut self, payload_type: Option<u8>) {
        self.comfort_noise_payload_type = payload_type.filter(|_| self.clock_rate == 8000);
        self.comfort_noise_level = None;
    }

    /// RFC 2198 redundancy ([`crate::sdp::Negotiated::red`]): with `Some(payload_type)`, Opus
    /// packets repeat the four frames before theirs while the remote reports loss that comes
    /// in bursts (from 2 % reported loss, runs of 1.6 packets on average), each carrying Opus
    /// DRED too (the encoder at its DRED bitrate); G.711 packets repeat the frame before
    /// theirs from the call's start and under any reported loss from 2 %, the two before when
    /// it comes in bursts (see [`G711_RED_COPIES_RANDOM`]). RED packets from the remote are
    /// unwrapped, their copies filling the jitter buffer's holes (counted in
    /// [`MediaStats::red_recovered`]). `None` (the default): plain packets only.
    pub fn set_red(&mut self, payload_type: Option<u8>) {
        self.red_payload_type = payload_type;
        self.red_history.clear();
        self.update_red_copies();
    }

    /// Hold: stop (or resume) sending RTP. RTCP continues.
    pub fn set_sending(&mut self, sending: bool) {
        self.sending = sending;
    }

    /// Hold: stop (or resume) playing received audio. Statistics and RTCP continue.
    pub fn set_receiving(&mut self, receiving: bool) {
        if self.receiving && !receiving {
            self.jitter.reset();
            self.pcm.clear();
        }
        self.receiving = receiving;
    }

    /// Takes in one datagram from the media socket (RTP, or RTCP when muxed or on its port).
    pub fn handle_packet(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) {
        if rtp::is_rtcp(bytes) {
            self.handle_rtcp(now, bytes);
            return;
        }
        let packet = match RtpPacket::parse(bytes) {
            Ok(packet) => packet,
            Err(error) => {
                tracing::debug!(%error, "media: discarding datagram");
                self.packets_discarded += 1;
                return;
            }
        };
        let is_audio = packet.payload_type == self.payload_type;
        let is_red = Some(packet.payload_type) == self.red_payload_type;
        let is_dtmf = Some(packet.payload_type) == self.dtmf_payload_type;
        // CN's static payload type is for 8 kHz codecs (Opus has its own DTX).
        let is_comfort_noise = packet.payload_type == CN_PAYLOAD_TYPE
            && self.clock_rate == 8000
            && !is_audio
            && !is_dtmf;
        if !is_audio && !is_red && !is_dtmf && !is_comfort_noise {
            tracing::debug!(pt = packet.payload_type, "media: unexpected payload type");
            self.packets_discarded += 1;
            return;
        }
        let received = self.rtp.handle_rtp(now, &packet);
        if received.status == SequenceStatus::Bad {
            return;
        }
        if received.new_source {
            self.events.push_back(MediaEvent::RemoteSource(packet.ssrc));
            self.loss_runs = LossRuns::default();
        }
        if self.loss_runs.observe(packet.sequence) && self.red_reports_seen < 2 {
            // Before the remote's reports, the loss we see on its stream (often the same link)
            // is all we know: protect the call's first seconds from it.
            self.update_red_copies();
        }
        // Latch only on packets of a confirmed, in-sequence source, so a stray or spoofed
        // datagram cannot redirect the stream.
        if received.status == SequenceStatus::Valid && self.remote_address != Some(source) {
            self.remote_address = Some(source);
            self.events.push_back(MediaEvent::RemoteAddress(source));
        }
        if !self.receiving {
            return;
        }
        if self.rtp.remote_ssrc() != Some(packet.ssrc) {
            // A new SSRC still on probation.
            return;
        }
        if is_audio {
            self.comfort_noise_active = false;
            self.buffer_audio(now, packet.ssrc, packet.timestamp, packet.payload);
        } else if is_red {
            self.comfort_noise_active = false;
            self.receive_red(now, &packet);
        } else if is_comfort_noise {
            self.comfort_noise.update(packet.payload);
            self.comfort_noise_active = true;
            self.jitter.set_discontinuous(true);
        } else {
            self.dtmf_receiver.handle(packet.timestamp, packet.payload);
            while let Some(digit) = self.dtmf_receiver.poll_digit() {
                self.dtmf_received += 1;
                self.events.push_back(MediaEvent::DtmfReceived(digit));
            }
        }
    }

    /// Fills `out` with the next samples for the speaker (at [`Self::sample_rate`]): decoded
    /// audio, concealment for a lost packet, or silence. Call it from the audio clock, usually
    /// with one frame ([`Self::frame_samples`]); other lengths work too.
    pub fn pull_audio(&mut self, now: Instant, out: &mut [i16]) {
        if !self.receiving {
            out.fill(0);
            return;
        }
        let mut attempts = 0;
        while self.pcm.len() < out.len() && attempts < MAX_PULLS_PER_FRAME {
            attempts += 1;
            // The audio buffered ahead of the frame about to play: what it waited for.
            let delay_ms = self.jitter.delay().as_secs_f64() * 1000.0;
            let outcome = match self.jitter.pull(now) {
                Playout::Frame(payload) => self.decode(&payload),
                Playout::Lost if self.comfort_noise_active => {
                    self.play_comfort_noise(self.packet_samples);
                    FrameOutcome::Decoded
                }
                Playout::Lost => self.conceal(),
                Playout::Dtx if self.comfort_noise_active => {
                    self.play_comfort_noise(self.packet_samples);
                    FrameOutcome::Decoded
                }
                Playout::Dtx => {
                    // Decoding nothing after a silent frame runs libopus's comfort noise.
                    self.conceal();
                    FrameOutcome::Decoded
                }
                Playout::Empty => {
                    if self.comfort_noise_active {
                        let missing = out.len().saturating_sub(self.pcm.len());
                        self.play_comfort_noise(missing);
                    }
                    break;
                }
            };
            self.quality.record_frame(outcome, delay_ms);
        }
        self.snapshot_quality(now);
        self.adapt_fec_lookahead(now);
        let available = self.pcm.len().min(out.len());
        out[..available].copy_from_slice(&self.pcm[..available]);
        out[available..].fill(0);
        self.pcm.drain(..available);
    }

    /// Sends due RTCP reports and DTMF packets.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive_dtmf(now);
        self.snapshot_quality(now);
        if let Some(mut bytes) = self.rtp.handle_timeout(now) {
            self.write_loss_runs(&mut bytes);
            self.transmits
                .push_back(MediaTransmit { rtcp: true, bytes });
        }
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rtcp = self.rtp.poll_timeout();
        let dtmf = self.dtmf_sender.as_ref().and_then(DtmfSender::poll_timeout);
        Some(dtmf.map_or(rtcp, |d| d.min(rtcp)))
    }

    pub fn poll_transmit(&mut self) -> Option<MediaTransmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Ends the session: queues a last RTCP report with BYE.
    pub fn close(&mut self, now: Instant) {
        let bytes = self.rtp.bye(now);
        self.transmits
            .push_back(MediaTransmit { rtcp: true, bytes });
    }

    pub fn stats(&self) -> MediaStats {
        let reception = self.rtp.reception().unwrap_or_default();
        let remote = self.rtp.remote_report();
        let units_to_ms = |units: u32| f64::from(units) * 1000.0 / f64::from(self.clock_rate);
        MediaStats {
            codec: self.kind,
            packets_sent: u64::from(self.rtp.packets_sent()),
            octets_sent: u64::from(self.rtp.octets_sent()),
            packets_received: u64::from(reception.packets_received),
            packets_lost: reception.packets_lost,
            fraction_lost: reception.fraction_lost,
            jitter_ms: reception.jitter_ms,
            rtt_ms: self.rtp.rtt().map(|rtt| rtt.as_secs_f64() * 1000.0),
            remote_fraction_lost: remote.map(|r| f64::from(r.fraction_lost) / 256.0),
            remote_packets_lost: remote.map(|r| i64::from(r.cumulative_lost)),
            remote_jitter_ms: remote.map(|r| units_to_ms(r.jitter)),
            playout_delay_ms: self.jitter.delay().as_secs_f64() * 1000.0,
            target_delay_ms: self.jitter.target_delay().as_secs_f64() * 1000.0,
            jitter_buffer: self.jitter.stats(),
            fec_recovered: self.fec_recovered,
            red_recovered: self.jitter.stats().redundant_played,
            dred_recovered: self.dred_recovered,
            expected_loss_percent: self.expected_loss.percent,
            comfort_noise_frames: self.comfort_noise_frames,
            dtx_frames_received: self.jitter.stats().dtx_frames,
            dtx_frames_sent: self.dtx_frames_sent,
            comfort_noise_sent: self.comfort_noise_sent,
            packets_discarded: self.packets_discarded,
            dtmf_sent: self.dtmf_sent,
            dtmf_received: self.dtmf_received,
        }
    }

    /// The call's quality over the last [`quality::QUALITY_WINDOW`] (5 s): an E-model MOS for
    /// each direction and the figures behind it. Cheap; call it every few seconds. [`Self::stats`]
    /// stays cumulative.
    pub fn quality(&self, now: Instant) -> QualityReport {
        let (start_at, start) = self.quality.window_start(now);
        let mut end = self.quality.counters();
        (end.expected, end.received) = self.reception_counts();
        let figures = WindowFigures::between(&start, &end);
        let reception = self.rtp.reception().unwrap_or_default();
        let rtt_ms = self.rtp.rtt().map(|rtt| rtt.as_secs_f64() * 1000.0);
        let playout_delay_ms = figures
            .playout_delay_ms
            .unwrap_or_else(|| self.jitter.delay().as_secs_f64() * 1000.0);
        let one_way_delay_ms = rtt_ms.unwrap_or(0.0) / 2.0
            + playout_delay_ms
            + quality::codec_delay_ms(self.kind, self.ptime_ms);
        let local_r = quality::r_factor(&EModelInput {
            codec: self.kind,
            loss_percent: figures.concealed_percent,
            burst_ratio: figures.burst_ratio,
            one_way_delay_ms,
        });
        let remote_loss_percent = self
            .rtp
            .remote_report()
            .map(|report| f64::from(report.fraction_lost) * 100.0 / 256.0);
        // The remote's concealment and buffer are unknown: its raw loss, random, and our delay
        // (mouth-to-ear delay is about symmetric).
        let remote_r = remote_loss_percent.map(|loss_percent| {
            quality::r_factor(&EModelInput {
                codec: self.kind,
                loss_percent,
                burst_ratio: 1.0,
                one_way_delay_ms,
            })
        });
        let r_factor = remote_r.map_or(local_r, |remote| remote.min(local_r));
        QualityReport {
            mos: quality::mos_from_r(r_factor),
            r_factor,
            local_mos: quality::mos_from_r(local_r),
            remote_mos: remote_r.map(quality::mos_from_r),
            loss_percent: figures.loss_percent,
            concealed_percent: figures.concealed_percent,
            burst_ratio: figures.burst_ratio,
            remote_loss_percent,
            jitter_ms: reception.jitter_ms,
            rtt_ms,
            playout_delay_ms,
            one_way_delay_ms,
            fec_recovered: figures.fec_recovered,
            concealed_frames: figures.concealed_frames,
            window: now.saturating_duration_since(start_at),
        }
    }

    /// The remote stream's cumulative (expected, received) packets.
    fn reception_counts(&self) -> (i64, i64) {
        self.rtp.reception().map_or((0, 0), |r| {
            let received = i64::from(r.packets_received);
            (received + r.packets_lost, received)
        })
    }

    /// With CN negotiated and the microphone silent: sends a CN packet if one is due, moves the
    /// timeline on and returns `true` (the frame is not to be encoded).
    fn send_comfort_noise(&mut self, now: Instant, pcm: &[i16]) -> bool {
        let Some(payload_type) = self.comfort_noise_payload_type else {
            return false;
        };
        if !self.silence.is_silence(pcm) {
            self.comfort_noise_level = None;
            return false;
        }
        let level = comfort_noise::level_byte(pcm);
        let due = self.comfort_noise_level.is_none_or(|(last, at)| {
            last.abs_diff(level) >= CN_LEVEL_STEP_DB
                || now.saturating_duration_since(at) >= CN_REFRESH
        });
        if due {
            let timestamp = self.rtp.next_timestamp();
            let bytes = self
                .rtp
                .send_packet(now, payload_type, false, timestamp, &[level]);
            self.transmits
                .push_back(MediaTransmit { rtcp: false, bytes });
            self.comfort_noise_level = Some((level, now));
            self.comfort_noise_sent += 1;
        }
        self.dtx_frames_sent += 1;
        // The next speech packet starts a talkspurt (marker bit).
        self.rtp.skip(self.frame_units);
        true
    }

    /// While the network loses packets (see [`FEC_LOOKAHEAD_HOLD`]), keeps packets of
    /// look-ahead in the jitter buffer: as many as the remote's RED packets repeat, so the copies
    /// of a burst's frames arrive before their turn, and with Opus at least one (in-band FEC).
    fn adapt_fec_lookahead(&mut self, now: Instant) {
        let lost = self.rtp.reception().map_or(0, |r| r.packets_lost);
        if self.lost_history.len() == LOSS_SETTLE_PULLS {
            self.lost_history.pop_front();
        }
        self.lost_history.push_back(lost);
        let settled = self.lost_history.iter().copied().min().unwrap_or(lost);
        if settled > self.lost_seen {
            self.last_loss_at = Some(now);
        }
        // A new source restarts the count: that is no loss.
        self.lost_seen = settled;
        let lossy = self
            .last_loss_at
            .is_some_and(|at| now.saturating_duration_since(at) < FEC_LOOKAHEAD_HOLD);
        let wanted = if lossy && self.kind == CodecKind::Opus {
            // RED copies reach as far as its look-ahead; the DRED in the oldest copy rebuilds
            // frames before it that are still due. Waiting longer for more DRED scored worse
            // (each change of look-ahead conceals frames in speech).
            let dred =
                if self.remote_red_distance == 0 && self.loss_runs.mean_run() >= BURSTY_MEAN_RUN {
                    DRED_LOOKAHEAD_FRAMES
                } else {
                    0
                };
            FEC_LOOKAHEAD_FRAMES.max(self.remote_red_distance).max(dred)
        } else if lossy {
            // G.711: only RED copies can rebuild a frame.
            self.remote_red_distance
        } else {
            self.remote_red_distance = 0;
            0
        };
        if wanted != self.lookahead_frames {
            self.lookahead_frames = wanted;
            let ptime = Duration::from_millis(u64::from(self.ptime_ms));
            let min_delay = if wanted > 0 {
                ptime * (1 + wanted)
            } else {
                jitter::MIN_DELAY
            };
            tracing::debug!(frames = wanted, "media: jitter buffer look-ahead");
            self.jitter.set_min_delay(min_delay);
        }
    }

    /// Puts one audio payload into the jitter buffer, judged speech or silence so that the
    /// buffer shrinks in the pauses: Opus by its DTX and voice-activity flags, G.711 by its
    /// level against the noise floor ([`SilenceDetector`], whose hangover keeps the first
    /// 200 ms of a pause speech).
    fn buffer_audio(&mut self, now: Instant, ssrc: u32, timestamp: u32, payload: &[u8]) {
        let silent = codec::signals_silence(self.kind, payload);
        let speech = match self.kind {
            CodecKind::Opus => !silent,
            CodecKind::Pcmu | CodecKind::Pcma => {
                let to_linear = if self.kind == CodecKind::Pcmu {
                    codec::ulaw_to_linear
                } else {
                    codec::alaw_to_linear
                };
                let pcm: Vec<i16> = payload.iter().map(|&byte| to_linear(byte)).collect();
                !self.remote_silence.is_silence(&pcm)
            }
        };
        self.jitter
            .insert_classified(now, ssrc, timestamp, payload, speech);
        self.jitter.set_discontinuous(silent);
    }

    /// Unwraps a RED packet: its primary block goes into the jitter buffer as a packet, its
    /// redundant blocks only fill holes. Blocks of other payload types are ignored.
    fn receive_red(&mut self, now: Instant, packet: &RtpPacket<'_>) {
        let blocks = match red::parse(packet.payload) {
            Ok(blocks) => blocks,
            Err(error) => {
                tracing::debug!(%error, "media: discarding RED payload");
                self.packets_discarded += 1;
                return;
            }
        };
        let (redundant, primary) = match blocks.split_last() {
            Some((primary, redundant)) => (redundant, primary),
            None => return,
        };
        if primary.payload_type == self.payload_type {
            self.buffer_audio(now, packet.ssrc, packet.timestamp, primary.payload);
        }
        for block in redundant {
            if block.payload_type != self.payload_type {
                continue;
            }
            let distance = block.timestamp_offset.div_ceil(self.frame_units.max(1));
            self.remote_red_distance = self
                .remote_red_distance
                .max(distance.min(red::MAX_DISTANCE as u32));
            let timestamp = packet.timestamp.wrapping_sub(block.timestamp_offset);
            self.jitter
                .insert_redundant(packet.ssrc, timestamp, block.payload);
        }
    }

    /// With RED negotiated and loss seen, appends our [`LOSS_RUNS_APP_NAME`] packet to a report.
    fn write_loss_runs(&self, report: &mut Vec<u8>) {
        if (self.red_payload_type.is_none() && self.kind != CodecKind::Opus)
            || self.loss_runs.runs < 1.0
        {
            return;
        }
        let mean = (self.loss_runs.mean_run() * 256.0).min(f64::from(u16::MAX)) as u16;
        let runs = self.loss_runs.runs.min(f64::from(u16::MAX)) as u16;
        let mut data = mean.to_be_bytes().to_vec();
        data.extend_from_slice(&runs.to_be_bytes());
        RtcpPacket::App {
            subtype: LOSS_RUNS_APP_SUBTYPE,
            ssrc: self.rtp.ssrc(),
            name: LOSS_RUNS_APP_NAME,
            data,
        }
        .write(report);
    }

    /// How many earlier frames each packet repeats. Opus: four while the remote reports loss
    /// that comes in bursts, else none (see [`RED_MIN_LOSS_PERCENT`]). G.711: one under any
    /// reported loss, two when it comes in bursts (see [`G711_RED_COPIES_RANDOM`]). How it
    /// comes is what the remote says of our stream when it does, else what we see of its
    /// stream (often the same link); before its second report, either. Before its first
    /// reports the loss is taken as [`INITIAL_LOSS_PERCENT`], so bursts seen on the remote's
    /// stream protect the call's first seconds.
    fn update_red_copies(&mut self) {
        let percent = self.red_reports[0].max(self.red_reports[1]);
        let own = self.loss_runs.mean_run();
        let mean_run = match self.remote_mean_run {
            // Until the remote has reported twice, the few runs behind its figure are no surer
            // than ours: either showing bursts is enough.
            Some(remote) if self.red_reports_seen < 2 => remote.max(own),
            Some(remote) => remote,
            None => own,
        };
        let lossy = percent >= RED_MIN_LOSS_PERCENT;
        let bursty = mean_run >= BURSTY_MEAN_RUN;
        let protect = bursty && lossy;
        // Opus carries its own deep redundancy (DRED) in its packets, with RED too: the
        // encoder then runs at its DRED bitrate (48 kbit/s a copy, ~240 kbit/s in all while
        // speaking, instead of 18), and the DRED in the oldest copy rebuilds frames of bursts
        // longer than the copies reach. Relay bench, burst10, PESQ-WB A/B at the same moment,
        // seeds 7/8/9: 2.47-2.59 / 2.71-2.81 / 3.16-3.20 with RED alone, 2.87-2.94 /
        // 3.21-3.27 / 3.60-3.66 with DRED too (~30 frames a call rebuilt from DRED). Most of
        // the gain is the bitrate: RED alone at 32 kbit/s a copy scored about the same.
        let dred = protect && self.kind == CodecKind::Opus;
        if dred != self.dred_on {
            tracing::debug!(dred, "media: Opus DRED");
            self.dred_on = dred;
            self.encoder.set_deep_redundancy(dred);
        }
        let copies = match (self.red_payload_type, self.kind) {
            (None, _) => 0,
            (Some(_), CodecKind::Opus) if protect => red::MAX_DISTANCE as u8,
            (Some(_), CodecKind::Opus) => 0,
            (Some(_), CodecKind::Pcmu | CodecKind::Pcma) if bursty && lossy => {
                G711_RED_COPIES_BURSTY
            }
            (Some(_), CodecKind::Pcmu | CodecKind::Pcma) if lossy => G711_RED_COPIES_RANDOM,
            (Some(_), CodecKind::Pcmu | CodecKind::Pcma) => 0,
        };
        if copies != self.red_copies {
            tracing::debug!(copies, "media: RED copies");
            self.red_copies = copies;
            self.encoder.set_redundant_copies(copies);
        }
    }

    fn snapshot_quality(&mut self, now: Instant) {
        let (expected, received) = self.reception_counts();
        self.quality.snapshot(now, expected, received);
    }

    fn handle_rtcp(&mut self, now: Instant, bytes: &[u8]) {
        let packets = match rtcp::parse_compound(bytes) {
            Ok(packets) => packets,
            Err(error) => {
                tracing::debug!(%error, "media: discarding RTCP");
                self.packets_discarded += 1;
                return;
            }
        };
        let remote_ssrc = self.rtp.remote_ssrc();
        for packet in &packets {
            if let RtcpPacket::App {
                subtype: LOSS_RUNS_APP_SUBTYPE,
                ssrc,
                name: LOSS_RUNS_APP_NAME,
                data,
            } = packet
                && Some(*ssrc) == remote_ssrc
                && let Some(mean) = data.first_chunk::<2>()
            {
                self.remote_mean_run = Some(f64::from(u16::from_be_bytes(*mean)) / 256.0);
            }
        }
        let update = self.rtp.handle_rtcp(now, &packets);
        if let Some(report) = update.report {
            if let Some(percent) = self.expected_loss.report(now, report.fraction_lost) {
                tracing::debug!(percent, "media: encoder expected loss");
                self.encoder.set_packet_loss_percent(percent);
            }
            let reported = (u32::from(report.fraction_lost) * 100).div_ceil(256);
            // fraction_lost <= 255, so reported <= 100.
            self.red_reports = [self.red_reports[1], reported as u8];
            self.red_reports_seen = self.red_reports_seen.saturating_add(1).min(2);
            self.update_red_copies();
        }
        if update.bye {
            self.events.push_back(MediaEvent::RemoteBye);
        }
    }

    fn drive_dtmf(&mut self, now: Instant) {
        let (Some(sender), Some(payload_type)) =
            (self.dtmf_sender.as_mut(), self.dtmf_payload_type)
        else {
            return;
        };
        for packet in sender.handle_timeout(now, self.rtp.next_timestamp()) {
            if packet.marker {
                self.dtmf_sent += 1;
            }
            let bytes = self.rtp.send_packet(
                now,
                payload_type,
                packet.marker,
                packet.timestamp,
                &packet.payload,
            );
            self.transmits
                .push_back(MediaTransmit { rtcp: false, bytes });
        }
    }

    fn decode(&mut self, payload: &[u8]) -> FrameOutcome {
        match self.decoder.decode(payload, &mut self.pcm) {
            Ok(0) => self.conceal(),
            Ok(samples) => {
                if samples != self.packet_samples {
                    self.packet_samples = samples;
                    let units =
                        samples as u64 * u64::from(self.clock_rate) / u64::from(self.sample_rate);
                    self.jitter
                        .set_frame_duration(u32::try_from(units).unwrap_or(self.frame_units));
                }
                FrameOutcome::Decoded
            }
            Err(error) => {
                tracing::debug!(%error, "media: decode failed, concealing");
                self.conceal()
            }
        }
    }

    fn play_comfort_noise(&mut self, samples: usize) {
        self.comfort_noise.generate(samples, &mut self.pcm);
        self.comfort_noise_frames += 1;
    }

    fn conceal(&mut self) -> FrameOutcome {
        if let Some(next) = self.jitter.next_payload() {
            match self
                .decoder
                .decode_fec(next, self.packet_samples, &mut self.pcm)
            {
                Ok(true) => {
                    self.fec_recovered += 1;
                    return FrameOutcome::FecRecovered;
                }
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "media: FEC decode failed"),
            }
        }
        if let Some((frames, later)) = self.jitter.payload_after_loss() {
            match self
                .decoder
                .decode_dred(later, frames, self.packet_samples, &mut self.pcm)
            {
                Ok(true) => {
                    self.dred_recovered += 1;
                    return FrameOutcome::FecRecovered;
                }
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "media: DRED decode failed"),
            }
        }
        let before = self.pcm.len();
        if let Err(error) = self.decoder.conceal(self.packet_samples, &mut self.pcm) {
            tracing::debug!(%error, "media: concealment failed, playing silence");
            self.pcm.truncate(before);
            self.pcm.extend(std::iter::repeat_n(0, self.packet_samples));
        }
        FrameOutcome::Concealed
    }
}

/// Runs of consecutive lost packets in the remote's stream, weighted toward the recent ones.
#[derive(Debug, Default)]
struct LossRuns {
    highest: Option<u16>,
    lost: f64,
    runs: f64,
}

impl LossRuns {
    /// Takes the sequence number of a received packet; returns whether it ended a loss run.
    fn observe(&mut self, sequence: u16) -> bool {
        let Some(highest) = self.highest else {
            self.highest = Some(sequence);
            return false;
        };
        let ahead = sequence.wrapping_sub(highest);
        if ahead == 0 || ahead >= 0x8000 {
            // A duplicate or a late packet (reordering).
            return false;
        }
        self.highest = Some(sequence);
        let gap = ahead - 1;
        // A long gap is a pause or a jump, not a loss run.
        if !(1..=50).contains(&gap) {
            return false;
        }
        self.lost = self.lost * LOSS_RUN_DECAY + f64::from(gap);
        self.runs = self.runs * LOSS_RUN_DECAY + 1.0;
        true
    }

    /// Mean packets per loss run (1.0 with no loss seen).
    fn mean_run(&self) -> f64 {
        if self.runs < 1.0 {
            return 1.0;
        }
        self.lost / self.runs
    }
}

/// The encoder's expected-loss setting, driven by the loss the remote reports about our
/// stream. It rises at once; it falls only after two reports in a row below it, to the higher
/// of the two, and not during the first [`LOSS_PROTECTION`].
#[derive(Debug)]
struct ExpectedLoss {
    percent: u8,
    started: Instant,
    /// The higher of the reports below `percent` seen in a row, if any.
    lower: Option<u8>,
}

impl ExpectedLoss {
    fn new(now: Instant) -> Self {
        Self {
            percent: INITIAL_LOSS_PERCENT,
            started: now,
            lower: None,
        }
    }

    /// Takes the remote's `fraction_lost` (RFC 3550, /256); returns the new setting on change.
    fn report(&mut self, now: Instant, fraction_lost: u8) -> Option<u8> {
        let reported = (u32::from(fraction_lost) * 100).div_ceil(256);
        // reported <= 100, within u8.
        let wanted = (reported as u8).clamp(MIN_LOSS_PERCENT, MAX_LOSS_PERCENT);
        if wanted >= self.percent {
            self.lower = None;
            let raised = wanted > self.percent;
            self.percent = wanted;
            return raised.then_some(wanted);
        }
        if now.saturating_duration_since(self.started) < LOSS_PROTECTION {
            return None;
        }
        match self.lower {
            None => {
                self.lower = Some(wanted);
                None
            }
            Some(previous) => {
                self.lower = None;
                self.percent = previous.max(wanted);
                Some(self.percent)
            }
        }
    }
}

#[cfg(test)]
mod tests;
