//! Offer/answer (RFC 3264) for one plain-RTP audio stream.
//!
//! We offer one `m=audio` line; as answerer we accept the first audio stream over `RTP/AVP` or
//! `RTP/AVPF` and reject every other stream with port 0. Hold and resume are re-offers built from
//! a [`LocalMedia`] with a higher `session_version` and the wanted [`Direction`].
//!
//! With Opus we also offer and accept RFC 2198 redundancy (`red/48000/2`, the way WebRTC does
//! "opus red"), with PCMU `red/8000` (G.711 has no in-band FEC); it is used only when both
//! sides list it ([`Negotiated::red`]), so peers without it (baresip, linphone, sipp, most PBXs)
//! get plain Opus or PCMU. With G.711 we offer and accept RFC 3389
//! comfort noise (`13 CN/8000`), used only when both sides list it ([`Negotiated::comfort_noise`]).

use std::net::{IpAddr, SocketAddr};

use super::crypto::{CryptoLine, SrtpSuite};
use super::ice::{self, LocalIce, NegotiatedIce};
use super::model::{
    Attribute, Connection, MediaDescription, Origin, Protocol, RtpMap, SessionDescription, Timing,
};
use crate::{CodecKind, CodecSpec, Direction};

/// The RFC 4733 encoding name for DTMF events.
const TELEPHONE_EVENT: &str = "telephone-event";
/// Payload type of `telephone-event/8000` in our offers.
const DTMF_PAYLOAD_TYPE: u8 = 101;
/// Preferred payload type of `telephone-event/48000` (offered alongside Opus).
const DTMF_WIDEBAND_PAYLOAD_TYPE: u8 = 110;
/// The events we send and receive: digits, `*`, `#`, A–D and flash.
const DTMF_EVENTS: &str = "0-16";
/// The RFC 2198 encoding name for redundant audio.
const RED: &str = "red";
/// Preferred payload type of `red/48000/2` (offered after Opus, as WebRTC does).
const RED_PAYLOAD_TYPE: u8 = 63;
/// Preferred payload type of `red/8000` carrying PCMU (offered after PCMU).
const RED_PCMU_PAYLOAD_TYPE: u8 = 122;
/// The RFC 3389 encoding name for comfort noise (static payload type 13 at 8000 Hz).
const COMFORT_NOISE: &str = "CN";
/// Used when neither side states a packetisation time.
const DEFAULT_PTIME_MS: u32 = 20;

/// What we want for our audio stream; the input of every offer and answer we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address (written in `c=` and `o=`).
    pub addr: IpAddr,
    /// Our RTP port; RTCP is expected on `port + 1` unless rtcp-mux is negotiated.
    pub port: u16,
    /// Codecs we can use, most preferred first (an empty list offers PCMU).
    pub codecs: Vec<CodecKind>,
    /// Offer/accept RFC 4733 `telephone-event`: PT 101 at 8000 Hz in our offers, plus PT 110 at
    /// 48000 Hz when Opus is offered (the event clock must match the audio codec's).
    pub dtmf: bool,
    /// What we want: `SendRecv` normally, `SendOnly` to hold, `Inactive` to hold while held.
    pub direction: Direction,
    /// Our packetisation time (`a=ptime`), usually 20.
    pub ptime_ms: u32,
    /// `o=` session id: fixed for the whole call.
    pub session_id: u64,
    /// `o=` session version: bump it for every new offer or changed answer in the dialog.
    pub session_version: u64,
    /// SRTP with SDES keys (RFC 4568); `None`: plain RTP only.
    pub srtp: Option<LocalSrtp>,
    /// ICE + DTLS-SRTP (WebRTC style); `None`: such offers are refused.
    pub ice: Option<LocalIce>,
}

/// Our SRTP side: whether plain RTP is refused, and fresh random bytes for our keys.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalSrtp {
    /// Refuse plain RTP (offer RTP/SAVP; answer a plain offer with 488).
    pub mandatory: bool,
    /// Random bytes: one key per offered suite, never reused across calls (the same for every
    /// offer of a call, so re-offers keep the keys). Its length is the type's: no short key.
    pub key_material: [u8; SRTP_KEY_MATERIAL_LEN],
}

impl std::fmt::Debug for LocalSrtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSrtp")
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

/// Random bytes a [`LocalSrtp`] needs: 30 for the counter-mode suites, 28 for GCM.
pub const SRTP_KEY_MATERIAL_LEN: usize = 58;

impl LocalSrtp {
    /// Our key (master key + salt) for `suite`, from a part of the key material of its own.
    fn key(&self, suite: SrtpSuite) -> Vec<u8> {
        // Counter mode takes the first 30 bytes, GCM the 28 after them.
        let start = match suite {
            SrtpSuite::AeadAes128Gcm => 30,
            _ => 0,
        };
        self.key_material
            .iter()
            .copied()
            .skip(start)
            .take(suite.key_material_len())
            .collect()
    }
}

/// The SRTP keys of a call: the suite, our key (what we send with) and the peer's.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: SrtpSuite,
    pub local_key: Vec<u8>,
    pub remote_key: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The outcome of a negotiation: everything the RTP session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec to send and expect, with the payload type the peer uses and the peer's `fmtp`
    /// (its receive preferences, e.g. `useinbandfec=1`).
    pub codec: CodecSpec,
    pub kind: CodecKind,
    /// `telephone-event` with its payload type and clock rate, if both sides do RFC 4733.
    pub dtmf: Option<CodecSpec>,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `a=rtcp`, else the RTP port + 1; equal to `remote_rtp` when muxed.
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share one port (RFC 5761), both sides said `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// OUR side: `sends()` = we transmit, `receives()` = we expect media. A peer on hold
    /// (`sendonly`, `inactive` or `c=0.0.0.0`) means we do not send.
    pub direction: Direction,
    /// Packetisation time we send with (what the peer asked for, within codec limits).
    pub ptime_ms: u32,
    /// The peer's SSRC from its first `a=ssrc`, if any.
    pub remote_ssrc: Option<u32>,
    /// RFC 2198 redundancy for Opus (`red/48000/2`) or PCMU (`red/8000`), blocks of
    /// [`Self::codec`] only, when both sides have it: send and expect RED packets with this
    /// payload type ([`crate::MediaSession::set_red`]). `None` for peers without it: plain
    /// packets.
    pub red: Option<CodecSpec>,
    /// RFC 3389 comfort noise (`CN/8000`, usually payload type 13) with G.711, when both sides
    /// list it: send CN instead of silent frames
    /// ([`crate::MediaSession::set_comfort_noise`]). `None`: every frame is sent.
    pub comfort_noise: Option<CodecSpec>,
    /// SRTP (SDES) when both sides agreed on a suite; `None`: plain RTP or DTLS-SRTP.
    pub srtp: Option<SrtpKeys>,
    /// ICE + DTLS-SRTP: media goes over the pair ICE selects (`remote_rtp` is only the peer's
    /// default candidate), keyed by the DTLS handshake.
    pub ice: Option<NegotiatedIce>,
}

/// Why an offer could not be answered or an answer could not be applied.
///
/// Every error from [`create_answer`] means "488 Not Acceptable Here" ([`Self::sip_status`]);
/// an error from [`apply_answer`] means the call must be ended (ACK, then BYE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    #[error("no audio stream in the session description")]
    NoAudioStream,
    /// Only secure (SRTP/DTLS) or other non-RTP/AVP audio streams were offered.
    #[error("audio offered only over {0}; not supported (RTP/AVP(F), and RTP/SAVP(F) with SDES)")]
    UnsupportedProtocol(String),
    #[error("no codec in common")]
    NoCommonCodec,
    #[error("no connection address (c=) for the audio stream")]
    MissingConnection,
    #[error("connection address {0:?} is not an IP address")]
    UnsupportedAddress(String),
    #[error("the answer has {answered} m= lines for {offered} offered")]
    MediaCountMismatch { offered: usize, answered: usize },
    #[error("the answer rejected the audio stream (port 0)")]
    AudioRejected,
    #[error("the answer's audio m= line does not match the offer: {0}")]
    AnswerMismatch(&'static str),
    /// Our policy requires SRTP and the peer offered or answered plain RTP.
    #[error("media encryption (SRTP) is required and the peer does not offer it")]
    EncryptionRequired,
    /// Secure RTP offered with no crypto suite we speak.
    #[error("no SRTP crypto suite in common")]
    NoCommonCrypto,
    /// ICE or DTLS attributes missing or unusable.
    #[error("ICE/DTLS: {0}")]
    Ice(&'static str),
}

impl NegotiationError {
    /// The SIP response to an offer we cannot answer: 488 Not Acceptable Here.
    pub fn sip_status(&self) -> u16 {
        488
    }
}

/// Builds our offer (initial, hold or resume): one `m=audio` over RTP/AVP with the codecs in
/// preference order (PCMU 0, PCMA 8, Opus `opus/48000/2` at 111, others dynamic), right after
/// Opus its RFC 2198 redundancy (`red/48000/2` at 63, `a=fmtp:63 111/111/111/111/111`: up to
/// four redundant Opus frames per packet), right after PCMU its own (`red/8000` at 122,
/// `a=fmtp:122 0/0/0`: up to two redundant PCMU frames), DTMF if wanted, `a=ptime` and the
/// direction.
pub fn create_offer(local: &LocalMedia) -> SessionDescription {
    let mut used: Vec<u8> = Vec::new();
    let mut specs: Vec<CodecSpec> = Vec::new();
    if local.dtmf {
        used.push(DTMF_PAYLOAD_TYPE);
    }
    let codecs: &[CodecKind] = if local.codecs.is_empty() {
        tracing::warn!("no codec configured: offering PCMU");
        &[CodecKind::Pcmu]
    } else {
        &local.codecs
    };
    for kind in codecs {
        if specs
            .iter()
            .any(|s| CodecKind::from_name(&s.name) == Some(*kind))
        {
            continue;
        }
        let mut spec = kind.default_spec();
        spec.payload_type = allocate_payload_type(spec.payload_type, &used);
        used.push(spec.payload_type);
        let codec_payload_type = spec.payload_type;
        specs.push(spec);
        let red_preferred = match kind {
            CodecKind::Opus => Some(RED_PAYLOAD_TYPE),
            CodecKind::Pcmu => Some(RED_PCMU_PAYLOAD_TYPE),
            CodecKind::Pcma => None,
        };
        if let Some(preferred) = red_preferred {
            let payload_type = allocate_payload_type(preferred, &used);
            used.push(payload_type);
            specs.push(red_spec(payload_type, *kind, codec_payload_type));
        }
    }
    if specs.iter().any(|s| is_g711(&s.name)) {
        let payload_type = allocate_payload_type(crate::comfort_noise::CN_PAYLOAD_TYPE, &used);
        used.push(payload_type);
        specs.push(comfort_noise_spec(payload_type));
    }
    if local.dtmf {
        if specs.iter().any(|s| s.clock_rate == 48000) {
            let payload_type = allocate_payload_type(DTMF_WIDEBAND_PAYLOAD_TYPE, &used);
            used.push(payload_type);
            specs.push(telephone_event(payload_type, 48000, Some(DTMF_EVENTS)));
        }
        specs.push(telephone_event(DTMF_PAYLOAD_TYPE, 8000, Some(DTMF_EVENTS)));
    }

    // SRTP: RTP/SAVP when plain RTP is refused; else best-effort SDES over RTP/AVP (as
    // Asterisk and baresip do), so a plain peer still answers.
    let offered_ice = local.ice.as_ref().filter(|ice| ice.offer);
    let protocol = match (&local.srtp, offered_ice) {
        (_, Some(_)) => Protocol::UdpTlsRtpSavpf,
        (Some(srtp), None) if srtp.mandatory => Protocol::RtpSavp,
        _ => Protocol::RtpAvp,
    };
    let mut media = audio_section(local.port, protocol, &specs);
    if let Some(ice) = offered_ice {
        ice::add_to_offer(&mut media, ice);
    } else if let Some(srtp) = &local.srtp {
        for (tag, suite) in (1..).zip(SrtpSuite::OFFERED) {
            let line = CryptoLine {
                tag,
                suite,
                key: srtp.key(suite),
            };
            media
                .attributes
                .push(Attribute::with_value("crypto", line.value()));
        }
    }
    media
        .attributes
        .push(Attribute::with_value("ptime", local.ptime_ms.to_string()));
    media
        .attributes
        .push(Attribute::flag(local.direction.as_str()));
    let mut sdp = session(local, vec![media]);
    if let Some(ice) = offered_ice {
        sdp.attributes.push(ice::offer_group(ice));
    }
    sdp
}

/// Answers `offer`: picks the first audio stream over RTP/AVP(F) and in it the first of OUR
/// codecs the offer has (offerer's payload type kept), plus `telephone-event` if both want it.
/// Other streams are rejected with port 0. The direction follows RFC 3264 §6.1.
pub fn create_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let index = audio_stream(offer, local.srtp.is_some(), local.ice.is_some())?;
    let offered = offer
        .media
        .get(index)
        .ok_or(NegotiationError::NoAudioStream)?;
    let dtls = is_dtls(&offered.protocol);
    let srtp = if dtls {
        None
    } else {
        answer_srtp(offered, local)?
    };

    let (codec, kind) = local
        .codecs
        .iter()
        .find_map(|kind| find_codec(offered, *kind).map(|spec| (spec, *kind)))
        .ok_or(NegotiationError::NoCommonCodec)?;
    let dtmf = if local.dtmf {
        find_dtmf(offered, codec.clock_rate, |_| true)
    } else {
        None
    };
    let red = find_red(offered, kind, codec.payload_type, |_| true);
    let comfort_noise = find_comfort_noise(offered, kind, |_| true);
    let rtcp_mux = offered.rtcp_mux();
    let (remote_rtp, remote_rtcp) = remote_addresses(offer, offered, rtcp_mux)?;

    let offered_direction = peer_direction(offer, offered);
    let direction = intersect(offered_direction.reversed(), local.direction);
    tracing::debug!(
        ?offered_direction,
        answered = ?direction,
        codec = %kind,
        "answering SDP offer"
    );

    let mut answer_specs = vec![CodecSpec {
        fmtp: kind.default_spec().fmtp,
        ..codec.clone()
    }];
    answer_specs.extend(
        red.as_ref()
            .map(|red| red_spec(red.payload_type, kind, codec.payload_type)),
    );
    answer_specs.extend(
        comfort_noise
            .as_ref()
            .map(|cn| comfort_noise_spec(cn.payload_type)),
    );
    answer_specs.extend(dtmf.clone());
    let mut media = audio_section(local.port, offered.protocol.clone(), &answer_specs);
    if let Some((tag, keys)) = &srtp {
        let line = CryptoLine {
            tag: *tag,
            suite: keys.suite,
            key: keys.local_key.clone(),
        };
        media
            .attributes
            .push(Attribute::with_value("crypto", line.value()));
    }
    media
        .attributes
        .push(Attribute::with_value("ptime", local.ptime_ms.to_string()));
    media.attributes.push(Attribute::flag(direction.as_str()));
    let ice = match (&local.ice, dtls) {
        (Some(local_ice), true) => Some(ice::answer(offer, offered, local_ice, &mut media)?),
        _ => {
            if rtcp_mux {
                media.attributes.push(Attribute::flag("rtcp-mux"));
            }
            None
        }
    };

    let sections = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                media.clone()
            } else {
                rejected(m)
            }
        })
        .collect();

    let negotiated = Negotiated {
        ptime_ms: sending_ptime(offered, local.ptime_ms, kind),
        codec,
        kind,
        dtmf,
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        direction,
        remote_ssrc: offered.first_ssrc(),
        red,
        comfort_noise,
        srtp: srtp.map(|(_, keys)| keys),
        ice,
    };
    let mut answer = session(local, sections);
    if negotiated.ice.is_some()
        && let Some(mid) = offered.attribute("mid").and_then(|a| a.value.as_deref())
    {
        answer
            .attributes
            .push(Attribute::with_value("group", format!("BUNDLE {mid}")));
    }
    Ok((answer, negotiated))
}

/// The `a=crypto` lines of a media section we can use, in their order.
fn crypto_lines(media: &MediaDescription) -> Vec<CryptoLine> {
    media
        .attributes
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case("crypto"))
        .filter_map(|a| a.value.as_deref().and_then(CryptoLine::parse))
        .collect()
}

/// As answerer: the offered crypto line we take (our best suite among the offered), with our
/// keys for it. Plain RTP when we or the offer have no SRTP, unless one side requires it.
fn answer_srtp(
    offered: &MediaDescription,
    local: &LocalMedia,
) -> Result<Option<(u32, SrtpKeys)>, NegotiationError> {
    let secure = offered.protocol.is_secure_rtp();
    let Some(ours) = &local.srtp else {
        return if secure {
            Err(NegotiationError::UnsupportedProtocol(
                offered.protocol.to_string(),
            ))
        } else {
            Ok(None)
        };
    };
    let lines = crypto_lines(offered);
    let chosen = SrtpSuite::ACCEPTED
        .into_iter()
        .find_map(|suite| lines.iter().find(|line| line.suite == suite));
    match chosen {
        Some(line) => Ok(Some((
            line.tag,
            SrtpKeys {
                suite: line.suite,
                local_key: ours.key(line.suite),
                remote_key: line.key.clone(),
            },
        ))),
        None if secure => Err(NegotiationError::NoCommonCrypto),
        None if ours.mandatory => Err(NegotiationError::EncryptionRequired),
        None => Ok(None),
    }
}

/// Applies the peer's `answer` to our `offer`. The answerer may pick any codec we offered, with
/// the payload types it states; formats we did not offer are ignored (RFC 3264 §6.1 allows
/// them), but at least one codec we offered must remain.
pub fn apply_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let index = audio_stream(offer, true, true)?;
    let (Some(offered), Some(answered)) = (offer.media.get(index), answer.media.get(index)) else {
        return Err(NegotiationError::NoAudioStream);
    };
    if answered.port == 0 {
        return Err(NegotiationError::AudioRejected);
    }
    if !answered.media.eq_ignore_ascii_case("audio") {
        return Err(NegotiationError::AnswerMismatch("media type is not audio"));
    }
    if answered.protocol != offered.protocol {
        return Err(NegotiationError::AnswerMismatch(
            "transport protocol differs",
        ));
    }

    let offered_formats = rtp_formats(offered);
    let was_offered = |map: &RtpMap| {
        offered_formats
            .iter()
            .any(|o| o.same_codec(&map.encoding, map.clock_rate))
    };
    let (codec, kind) = rtp_formats(answered)
        .into_iter()
        .filter(|map| {
            let offered = was_offered(map);
            if !offered {
                tracing::debug!(format = %map, "ignoring format the answer added");
            }
            offered
        })
        .find_map(|map| {
            let kind = CodecKind::from_name(&map.encoding)?;
            (map.clock_rate == kind.default_spec().clock_rate)
                .then(|| (codec_spec(answered, &map), kind))
        })
        .ok_or(NegotiationError::NoCommonCodec)?;
    let dtmf = find_dtmf(answered, codec.clock_rate, was_offered);
    let red = find_red(answered, kind, codec.payload_type, was_offered);
    let comfort_noise = find_comfort_noise(answered, kind, was_offered);
    let rtcp_mux = offered.rtcp_mux() && answered.rtcp_mux();
    let (remote_rtp, remote_rtcp) = remote_addresses(answer, answered, rtcp_mux)?;

    let (srtp, ice) = if is_dtls(&offered.protocol) {
        (None, Some(ice::apply_answer(offered, answer, answered)?))
    } else {
        (answered_srtp(offered, answered)?, None)
    };

    let answered_direction = peer_direction(answer, answered);
    let direction = intersect(answered_direction.reversed(), offer.direction_for(offered));
    let our_ptime = offered.ptime().unwrap_or(DEFAULT_PTIME_MS);
    Ok(Negotiated {
        ptime_ms: sending_ptime(answered, our_ptime, kind),
        codec,
        kind,
        dtmf,
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        direction,
        remote_ssrc: answered.first_ssrc(),
        red,
        comfort_noise,
        srtp,
        ice,
    })
}

/// As offerer: the keys from the answer's crypto line for one we offered (same tag and
/// suite). A secure offer (RTP/SAVP: SRTP mandatory) needs one; a best-effort one does not.
fn answered_srtp(
    offered: &MediaDescription,
    answered: &MediaDescription,
) -> Result<Option<SrtpKeys>, NegotiationError> {
    let ours = crypto_lines(offered);
    let keys = crypto_lines(answered).into_iter().find_map(|line| {
        let offered = ours
            .iter()
            .find(|o| o.tag == line.tag && o.suite == line.suite)?;
        Some(SrtpKeys {
            suite: line.suite,
            local_key: offered.key.clone(),
            remote_key: line.key,
        })
    });
    match keys {
        None if offered.protocol.is_secure_rtp() => Err(NegotiationError::EncryptionRequired),
        keys => Ok(keys),
    }
}

/// DTLS-keyed SRTP (`UDP/TLS/RTP/SAVP(F)`), which comes with ICE here.
fn is_dtls(protocol: &Protocol) -> bool {
    matches!(protocol, Protocol::UdpTlsRtpSavp | Protocol::UdpTlsRtpSavpf)
}

/// The index of the audio stream we negotiate: the first enabled `m=audio` over plain RTP,
/// over SDES-keyed SRTP (RTP/SAVP(F)) when `srtp`, or over DTLS-SRTP with ICE when `ice`.
fn audio_stream(
    sdp: &SessionDescription,
    srtp: bool,
    ice: bool,
) -> Result<usize, NegotiationError> {
    let mut secure_only: Option<&Protocol> = None;
    for (index, media) in sdp.media.iter().enumerate() {
        if !media.media.eq_ignore_ascii_case("audio") || media.port == 0 {
            continue;
        }
        let sdes = matches!(media.protocol, Protocol::RtpSavp | Protocol::RtpSavpf);
        if media.protocol.is_plain_rtp() || (srtp && sdes) || (ice && is_dtls(&media.protocol)) {
            return Ok(index);
        }
        secure_only.get_or_insert(&media.protocol);
    }
    Err(match secure_only {
        Some(protocol) => NegotiationError::UnsupportedProtocol(protocol.to_string()),
        None => NegotiationError::NoAudioStream,
    })
}

/// The offered format for `kind` (matched by name and clock rate), as the offerer wrote it.
fn find_codec(offered: &MediaDescription, kind: CodecKind) -> Option<CodecSpec> {
    let wanted = kind.default_spec();
    rtp_formats(offered)
        .into_iter()
        .find(|map| map.same_codec(&wanted.name, wanted.clock_rate))
        .map(|map| codec_spec(offered, &map))
}

/// The `red` format at the codec's clock rate in `media` accepted by `allowed` that can carry
/// the chosen codec (`codec_payload_type`): its `a=fmtp` block list, if any, names only that
/// payload type. RED is used with Opus and PCMU only (what we offer it with).
fn find_red(
    media: &MediaDescription,
    kind: CodecKind,
    codec_payload_type: u8,
    allowed: impl Fn(&RtpMap) -> bool,
) -> Option<CodecSpec> {
    if !matches!(kind, CodecKind::Opus | CodecKind::Pcmu) {
        return None;
    }
    let clock_rate = kind.default_spec().clock_rate;
    rtp_formats(media)
        .into_iter()
        .filter(|map| map.same_codec(RED, clock_rate) && allowed(map))
        .map(|map| codec_spec(media, &map))
        .find(|spec| {
            spec.fmtp.as_deref().is_none_or(|blocks| {
                blocks
                    .trim()
                    .split('/')
                    .all(|block| block.trim().parse::<u8>() == Ok(codec_payload_type))
            })
        })
}

fn is_g711(encoding: &str) -> bool {
    matches!(
        CodecKind::from_name(encoding),
        Some(CodecKind::Pcmu | CodecKind::Pcma)
    )
}

/// The `CN/8000` format in `media` accepted by `allowed`, with G.711 only (RFC 3389 CN at
/// 8000 Hz goes with 8 kHz codecs; Opus has its own DTX).
fn find_comfort_noise(
    media: &MediaDescription,
    kind: CodecKind,
    allowed: impl Fn(&RtpMap) -> bool,
) -> Option<CodecSpec> {
    if !is_g711(kind.default_spec().name.as_str()) {
        return None;
    }
    rtp_formats(media)
        .into_iter()
        .find(|map| map.same_codec(COMFORT_NOISE, 8000) && allowed(map))
        .map(|map| codec_spec(media, &map))
}

fn comfort_noise_spec(payload_type: u8) -> CodecSpec {
    CodecSpec {
        payload_type,
        name: COMFORT_NOISE.to_owned(),
        clock_rate: 8000,
        channels: 1,
        fmtp: None,
    }
}

/// RFC 2198 redundancy of `kind` (its clock rate and channels) carrying a primary and as many
/// redundant blocks of `codec_payload_type` as we ever send with it
/// ([`crate::red::max_copies`]): `red/48000/2` with `111/111/111/111/111` for Opus, `red/8000`
/// with `0/0/0` for PCMU.
fn red_spec(payload_type: u8, kind: CodecKind, codec_payload_type: u8) -> CodecSpec {
    let codec = kind.default_spec();
    let blocks = 1 + usize::from(crate::red::max_copies(kind));
    CodecSpec {
        payload_type,
        name: RED.to_owned(),
        clock_rate: codec.clock_rate,
        channels: codec.channels,
        fmtp: Some(vec![codec_payload_type.to_string(); blocks].join("/")),
    }
}

/// The `telephone-event` format in `media` accepted by `allowed`, preferring the audio codec's
/// clock rate (RFC 4733 §2.1), else any.
fn find_dtmf(
    media: &MediaDescription,
    clock_rate: u32,
    allowed: impl Fn(&RtpMap) -> bool,
) -> Option<CodecSpec> {
    let events: Vec<RtpMap> = rtp_formats(media)
        .into_iter()
        .filter(|map| map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT) && allowed(map))
        .collect();
    events
        .iter()
        .find(|map| map.clock_rate == clock_rate)
        .or_else(|| events.first())
        .map(|map| codec_spec(media, map))
}

/// The RTP formats of `media` in order, each payload type once, with its rtpmap (explicit, else
/// static; formats without either are skipped). One pass over the attributes, so that a hostile
/// body with thousands of formats and rtpmaps costs linear time.
fn rtp_formats(media: &MediaDescription) -> Vec<RtpMap> {
    let mut explicit: Vec<Option<RtpMap>> = vec![None; 128];
    for map in media.rtpmaps() {
        if let Some(slot @ None) = explicit.get_mut(usize::from(map.payload_type)) {
            *slot = Some(map);
        }
    }
    let mut seen = [false; 128];
    let mut formats = Vec::new();
    for payload_type in media.payload_types() {
        let index = usize::from(payload_type);
        match seen.get_mut(index) {
            Some(seen) if !*seen => *seen = true,
            _ => continue,
        }
        let map = explicit
            .get_mut(index)
            .and_then(Option::take)
            .or_else(|| RtpMap::static_audio(payload_type));
        formats.extend(map);
    }
    formats
}

fn codec_spec(media: &MediaDescription, map: &RtpMap) -> CodecSpec {
    CodecSpec {
        payload_type: map.payload_type,
        name: map.encoding.clone(),
        clock_rate: map.clock_rate,
        channels: map.channels.unwrap_or(1),
        fmtp: media.fmtp(&map.payload_type.to_string()).map(str::to_owned),
    }
}

fn telephone_event(payload_type: u8, clock_rate: u32, events: Option<&str>) -> CodecSpec {
    CodecSpec {
        payload_type,
        name: TELEPHONE_EVENT.to_owned(),
        clock_rate,
        channels: 1,
        fmtp: events.map(str::to_owned),
    }
}

/// `preferred` if free, else the first free dynamic payload type (96–127).
fn allocate_payload_type(preferred: u8, used: &[u8]) -> u8 {
    if !used.contains(&preferred) {
        return preferred;
    }
    (96..=127)
        .find(|pt| !used.contains(pt))
        .unwrap_or(preferred)
}

/// `m=audio` with one format, `a=rtpmap` and `a=fmtp` per codec.
fn audio_section(port: u16, protocol: Protocol, specs: &[CodecSpec]) -> MediaDescription {
    let mut attributes = Vec::new();
    for spec in specs {
        let map = RtpMap {
            payload_type: spec.payload_type,
            encoding: spec.name.clone(),
            clock_rate: spec.clock_rate,
            channels: (spec.channels > 1).then_some(spec.channels),
        };
        attributes.push(Attribute::with_value("rtpmap", map.to_string()));
        if let Some(fmtp) = &spec.fmtp {
            attributes.push(Attribute::with_value(
                "fmtp",
                format!("{} {fmtp}", spec.payload_type),
            ));
        }
    }
    MediaDescription {
        media: "audio".to_owned(),
        port,
        port_count: None,
        protocol,
        formats: specs.iter().map(|s| s.payload_type.to_string()).collect(),
        connection: None,
        bandwidths: Vec::new(),
        attributes,
        other_lines: Vec::new(),
    }
}

/// An answer's stand-in for a stream we reject: same media and protocol, port 0.
fn rejected(offered: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: offered.media.clone(),
        port: 0,
        port_count: None,
        protocol: offered.protocol.clone(),
        formats: vec![
            offered
                .formats
                .first()
                .cloned()
                .unwrap_or_else(|| "0".to_owned()),
        ],
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
        other_lines: Vec::new(),
    }
}

fn session(local: &LocalMedia, media: Vec<MediaDescription>) -> SessionDescription {
    let connection = Connection::from_ip(local.addr);
    SessionDescription {
        origin: Origin {
            username: "-".to_owned(),
            session_id: local.session_id.to_string(),
            session_version: local.session_version,
            address: connection.clone(),
        },
        session_name: "-".to_owned(),
        connection: Some(connection),
        bandwidths: Vec::new(),
        timings: vec![Timing::default()],
        attributes: Vec::new(),
        media,
        other_lines: Vec::new(),
    }
}

/// RTP and RTCP destinations of `media`: `c=` + port; `a=rtcp`, else port + 1, else muxed.
fn remote_addresses(
    sdp: &SessionDescription,
    media: &MediaDescription,
    rtcp_mux: bool,
) -> Result<(SocketAddr, SocketAddr), NegotiationError> {
    let connection = sdp
        .connection_for(media)
        .ok_or(NegotiationError::MissingConnection)?;
    let ip = connection
        .ip()
        .ok_or_else(|| NegotiationError::UnsupportedAddress(connection.address.clone()))?;
    let rtp = SocketAddr::new(ip, media.port);
    if rtcp_mux {
        return Ok((rtp, rtp));
    }
    let rtcp = match media.rtcp() {
        Some(rtcp) => {
            let rtcp_ip = rtcp
                .connection
                .and_then(|c| c.ip())
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(ip);
            SocketAddr::new(rtcp_ip, rtcp.port)
        }
        None => SocketAddr::new(ip, media.port.checked_add(1).unwrap_or(media.port)),
    };
    Ok((rtp, rtcp))
}

/// The direction the peer wrote for `media`; `c=0.0.0.0` (RFC 2543 hold) means it does not
/// want to receive.
fn peer_direction(sdp: &SessionDescription, media: &MediaDescription) -> Direction {
    let written = sdp.direction_for(media);
    let on_old_hold = sdp
        .connection_for(media)
        .is_some_and(Connection::is_unspecified);
    if on_old_hold {
        from_flags(written.sends(), false)
    } else {
        written
    }
}

/// Media flows only where both allow it.
fn intersect(a: Direction, b: Direction) -> Direction {
    from_flags(a.sends() && b.sends(), a.receives() && b.receives())
}

fn from_flags(sends: bool, receives: bool) -> Direction {
    match (sends, receives) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// The packetisation time to send with: the peer's `a=ptime` if sane (10–120 ms), else ours,
/// capped by its `a=maxptime`, rounded down to what the codec can frame (Opus: 10/20/40/60).
fn sending_ptime(peer: &MediaDescription, ours: u32, kind: CodecKind) -> u32 {
    let sane = |ms: &u32| (10..=120).contains(ms);
    let mut ptime = peer
        .ptime()
        .filter(sane)
        .or(Some(ours).filter(sane))
        .unwrap_or(DEFAULT_PTIME_MS);
    if let Some(max) = peer.maxptime().filter(sane) {
        ptime = ptime.min(max);
    }
    match kind {
        CodecKind::Opus => [60, 40, 20, 10]
            .into_iter()
            .find(|frame| *frame <= ptime)
            .unwrap_or(DEFAULT_PTIME_MS),
        CodecKind::Pcmu | CodecKind::Pcma => ptime - ptime % 10,
    }
}
