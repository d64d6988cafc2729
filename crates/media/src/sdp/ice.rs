//! WebRTC-style media in SDP: ICE (RFC 8839) and DTLS-SRTP (RFC 5763, RFC 8842) attributes
//! of one `UDP/TLS/RTP/SAVPF` audio stream with rtcp-mux, as browsers and SIP-over-WebSocket
//! gateways want it.
//!
//! We offer `a=setup:actpass` and, as answerer, take the DTLS client role (`a=setup:active`)
//! unless the offerer already took it, as browsers do. The offerer controls ICE, unless the
//! answerer is ICE-lite.

use super::model::{Attribute, MediaDescription, SessionDescription};
use super::negotiate::NegotiationError;

/// Our ICE and DTLS side: credentials, candidates and certificate fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalIce {
    pub ufrag: String,
    pub pwd: String,
    /// `a=candidate` values (without the `candidate:` name), host first.
    pub candidates: Vec<String>,
    /// Our DTLS certificate's `a=fingerprint` value, e.g. `sha-256 AB:CD:…`.
    pub fingerprint: String,
    /// Write ICE/DTLS (`UDP/TLS/RTP/SAVPF`) in our offers; without it we still answer such
    /// offers with ICE/DTLS.
    pub offer: bool,
    /// Our stream's `a=mid` in offers (`0` when `None`): a re-offer keeps the negotiated one.
    pub mid: Option<String>,
    /// The DTLS role of the association in place, for re-offers (RFC 8842 §5.5: `active` or
    /// `passive` as before, not `actpass`); `None` for a new one.
    pub dtls_client: Option<bool>,
}

impl std::fmt::Debug for LocalIce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIce")
            .field("ufrag", &self.ufrag)
            .field("candidates", &self.candidates)
            .field("offer", &self.offer)
            .field("mid", &self.mid)
            .field("dtls_client", &self.dtls_client)
            .finish_non_exhaustive()
    }
}

/// What ICE and DTLS need once offer and answer are known.
#[derive(Clone, PartialEq, Eq)]
pub struct NegotiatedIce {
    pub local_ufrag: String,
    pub local_pwd: String,
    pub remote_ufrag: String,
    pub remote_pwd: String,
    /// The peer's `a=candidate` values, as written.
    pub remote_candidates: Vec<String>,
    /// The peer's certificate fingerprint, e.g. `sha-256 AB:CD:…`: the DTLS handshake must
    /// present a certificate with it.
    pub remote_fingerprint: String,
    /// We are the DTLS client (we said `active`, or the peer said `passive`).
    pub dtls_client: bool,
    /// We are the controlling ICE agent.
    pub controlling: bool,
    /// The peer is an ICE-lite agent (RFC 8445 §2.5): it does no checks of its own.
    pub remote_ice_lite: bool,
    /// The stream's `a=mid`, if any.
    pub mid: Option<String>,
}

impl std::fmt::Debug for NegotiatedIce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NegotiatedIce")
            .field("local_ufrag", &self.local_ufrag)
            .field("remote_ufrag", &self.remote_ufrag)
            .field("remote_candidates", &self.remote_candidates)
            .field("remote_fingerprint", &self.remote_fingerprint)
            .field("dtls_client", &self.dtls_client)
            .field("controlling", &self.controlling)
            .field("remote_ice_lite", &self.remote_ice_lite)
            .finish_non_exhaustive()
    }
}

/// The media id we give our stream in offers (browsers need one, RFC 8843 bundles by it).
const OFFER_MID: &str = "0";

/// Adds our ICE/DTLS attributes to an audio section we offer or answer with `setup`.
pub(super) fn add_attributes(
    media: &mut MediaDescription,
    local: &LocalIce,
    setup: &str,
    mid: Option<&str>,
) {
    let attributes = &mut media.attributes;
    if let Some(mid) = mid {
        attributes.push(Attribute::with_value("mid", mid));
    }
    attributes.push(Attribute::with_value("ice-ufrag", local.ufrag.clone()));
    attributes.push(Attribute::with_value("ice-pwd", local.pwd.clone()));
    attributes.push(Attribute::with_value(
        "fingerprint",
        local.fingerprint.clone(),
    ));
    attributes.push(Attribute::with_value("setup", setup));
    for candidate in &local.candidates {
        attributes.push(Attribute::with_value("candidate", candidate.clone()));
    }
    attributes.push(Attribute::flag("end-of-candidates"));
}

/// Adds ICE/DTLS to the audio section of our offer.
pub(super) fn add_to_offer(media: &mut MediaDescription, local: &LocalIce) {
    let setup = match local.dtls_client {
        None => "actpass",
        Some(true) => "active",
        Some(false) => "passive",
    };
    add_attributes(media, local, setup, Some(offer_mid(local)));
    media.attributes.push(Attribute::flag("rtcp-mux"));
}

fn offer_mid(local: &LocalIce) -> &str {
    local.mid.as_deref().unwrap_or(OFFER_MID)
}

/// The session-level `a=group:BUNDLE` of an offer carrying ICE.
pub(super) fn offer_group(local: &LocalIce) -> Attribute {
    Attribute::with_value("group", format!("BUNDLE {}", offer_mid(local)))
}

/// The `a=ice-ufrag` of the first audio stream of `sdp` (or of its session level): a new one
/// in a re-offer is an ICE restart.
pub fn ice_ufrag(sdp: &SessionDescription) -> Option<&str> {
    let media = sdp
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)?;
    media
        .attribute("ice-ufrag")
        .or_else(|| sdp.attributes.iter().find(|a| a.name == "ice-ufrag"))
        .and_then(|a| a.value.as_deref())
        .map(str::trim)
}

/// As answerer: checks the offered stream's ICE/DTLS, adds ours to `answer` and returns what
/// ICE and DTLS need.
pub(super) fn answer(
    offer: &SessionDescription,
    offered: &MediaDescription,
    local: &LocalIce,
    answer: &mut MediaDescription,
) -> Result<NegotiatedIce, NegotiationError> {
    let remote = RemoteIce::read(offer, offered)?;
    if !offered.rtcp_mux() {
        return Err(NegotiationError::Ice("ICE is supported with rtcp-mux only"));
    }
    // RFC 5763 §5: an offerer that took the client role (active) makes us the server.
    let (setup, dtls_client) = match remote.setup.as_str() {
        "active" => ("passive", false),
        "actpass" | "passive" => ("active", true),
        _ => {
            return Err(NegotiationError::Ice(
                "a=setup is not active, passive or actpass",
            ));
        }
    };
    let mid = offered.attribute("mid").and_then(|a| a.value.clone());
    add_attributes(answer, local, setup, mid.as_deref());
    answer.attributes.push(Attribute::flag("rtcp-mux"));
    Ok(NegotiatedIce {
        local_ufrag: local.ufrag.clone(),
        local_pwd: local.pwd.clone(),
        remote_ufrag: remote.ufrag,
        remote_pwd: remote.pwd,
        remote_candidates: remote.candidates,
        remote_fingerprint: remote.fingerprint,
        dtls_client,
        // The offerer controls, unless it is lite and we are not (RFC 8445 §6.1.1).
        controlling: remote.ice_lite,
        remote_ice_lite: remote.ice_lite,
        mid,
    })
}

/// As offerer: the answer's ICE/DTLS for our offered stream.
pub(super) fn apply_answer(
    offered: &MediaDescription,
    answer: &SessionDescription,
    answered: &MediaDescription,
) -> Result<NegotiatedIce, NegotiationError> {
    let remote = RemoteIce::read(answer, answered)?;
    let attribute = |name: &str| {
        offered
            .attribute(name)
            .and_then(|a| a.value.clone())
            .ok_or(NegotiationError::Ice("our offer lost its ICE credentials"))
    };
    let dtls_client = match remote.setup.as_str() {
        "passive" => true,
        "active" => false,
        _ => {
            return Err(NegotiationError::Ice(
                "the answer's a=setup is not active or passive",
            ));
        }
    };
    if !answered.rtcp_mux() {
        return Err(NegotiationError::Ice("the answer has no rtcp-mux"));
    }
    Ok(NegotiatedIce {
        local_ufrag: attribute("ice-ufrag")?,
        local_pwd: attribute("ice-pwd")?,
        remote_ufrag: remote.ufrag,
        remote_pwd: remote.pwd,
        remote_candidates: remote.candidates,
        remote_fingerprint: remote.fingerprint,
        dtls_client,
        controlling: true,
        remote_ice_lite: remote.ice_lite,
        mid: offered.attribute("mid").and_then(|a| a.value.clone()),
    })
}

/// The peer's ICE/DTLS attributes, media level first, then session level (RFC 8839 §5.4).
struct RemoteIce {
    ufrag: String,
    pwd: String,
    candidates: Vec<String>,
    fingerprint: String,
    setup: String,
    ice_lite: bool,
}

impl RemoteIce {
    fn read(sdp: &SessionDescription, media: &MediaDescription) -> Result<Self, NegotiationError> {
        let value = |name: &str| {
            media
                .attribute(name)
                .or_else(|| sdp.attributes.iter().find(|a| a.name == name))
                .and_then(|a| a.value.as_deref())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let ufrag = value("ice-ufrag").ok_or(NegotiationError::Ice("no a=ice-ufrag"))?;
        let pwd = value("ice-pwd").ok_or(NegotiationError::Ice("no a=ice-pwd"))?;
        let fingerprint = value("fingerprint").ok_or(NegotiationError::Ice("no a=fingerprint"))?;
        // RFC 4145: a missing a=setup means active.
        let setup = value("setup").unwrap_or("active").to_ascii_lowercase();
        let candidates: Vec<String> = media
            .attributes
            .iter()
            .filter(|a| a.name == "candidate")
            .filter_map(|a| a.value.as_deref())
            .map(str::to_owned)
            .collect();
        // ICE credentials are short printable tokens (RFC 8839 §5.4: 4–256 ice-chars).
        let ice_chars = |s: &str| {
            (4..=256).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        if !ice_chars(ufrag) || !ice_chars(pwd) {
            return Err(NegotiationError::Ice("malformed ICE credentials"));
        }
        Ok(Self {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
            candidates,
            fingerprint: fingerprint.to_owned(),
            setup,
            ice_lite: sdp.attributes.iter().any(|a| a.name == "ice-lite"),
        })
    }
}
