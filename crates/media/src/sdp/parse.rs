//! The tolerant, never-panicking SDP parser.

use super::model::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, Protocol, SessionDescription,
    Timing, media_line_rank, session_line_rank,
};

/// Why a session description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The first line is not `v=0` (or there are no lines at all).
    #[error("session description must start with v=0")]
    MissingVersion,
    /// There is no `o=` line.
    #[error("missing o= line")]
    MissingOrigin,
    /// A line is malformed or misplaced; `line` counts from 1.
    #[error("line {line}: {kind}")]
    Line { line: usize, kind: SdpErrorKind },
}

/// What is wrong with one line (or one attribute, see [`super::Attribute::known`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    #[error("not of the form <type>=<value>")]
    NotTypeValue,
    #[error("unsupported version (only v=0)")]
    UnsupportedVersion,
    #[error("duplicate {0}= line")]
    Duplicate(char),
    #[error("{0}= line not allowed in a media section")]
    NotInMedia(char),
    #[error("bad o= line: {0}")]
    Origin(&'static str),
    #[error("bad c= line: {0}")]
    Connection(&'static str),
    #[error("bad b= line: {0}")]
    Bandwidth(&'static str),
    #[error("bad t= line: {0}")]
    Timing(&'static str),
    #[error("r= line without a preceding t= line")]
    RepeatWithoutTiming,
    #[error("bad m= line: {0}")]
    Media(&'static str),
    #[error("bad attribute: {0}")]
    Attribute(&'static str),
}

impl SessionDescription {
    /// Parses SDP text. Accepts CRLF or LF line ends, trailing whitespace, blank lines, unknown
    /// line types and attributes (kept). Missing `s=` reads as `-`, missing `t=` as `t=0 0`.
    /// Rejects: no `v=0` first, no `o=`, duplicate or misplaced session lines, malformed
    /// `o=`/`c=`/`b=`/`t=`/`m=` lines, lines without `=`.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .split('\n')
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim_end()))
            .filter(|(_, line)| !line.is_empty());

        match lines.next() {
            Some((_, "v=0")) => {}
            Some((line, version)) if version.starts_with("v=") => {
                return Err(SdpError::Line {
                    line,
                    kind: SdpErrorKind::UnsupportedVersion,
                });
            }
            _ => return Err(SdpError::MissingVersion),
        }

        let mut builder = Builder::default();
        for (line, text) in lines {
            builder
                .line(text)
                .map_err(|kind| SdpError::Line { line, kind })?;
        }
        builder.finish()
    }

    /// Parses a SIP body. Invalid UTF-8 (e.g. a Latin-1 `s=`) is replaced, not rejected.
    /// This is the entry point for the SDP fuzz target.
    pub fn parse_bytes(body: &[u8]) -> Result<Self, SdpError> {
        Self::parse(&String::from_utf8_lossy(body))
    }
}

#[derive(Default)]
struct Builder {
    origin: Option<Origin>,
    session_name: Option<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    attributes: Vec<Attribute>,
    other_lines: Vec<(char, String)>,
    media: Vec<MediaDescription>,
}

impl Builder {
    fn line(&mut self, line: &str) -> Result<(), SdpErrorKind> {
        let (kind, value) = split_line(line)?;
        if kind == 'm' {
            self.media.push(parse_media(value)?);
            return Ok(());
        }
        if let Some(media) = self.media.last_mut() {
            return media_line(media, kind, value);
        }
        match kind {
            'v' => return Err(SdpErrorKind::Duplicate('v')),
            'o' => {
                if self.origin.is_some() {
                    return Err(SdpErrorKind::Duplicate('o'));
                }
                self.origin = Some(parse_origin(value)?);
            }
            's' => {
                if self.session_name.is_some() {
                    return Err(SdpErrorKind::Duplicate('s'));
                }
                self.session_name = Some(value.to_owned());
            }
            'c' => {
                if self.connection.is_some() {
                    return Err(SdpErrorKind::Duplicate('c'));
                }
                self.connection = Some(parse_connection(value)?);
            }
            'b' => self.bandwidths.push(parse_bandwidth(value)?),
            't' => self.timings.push(parse_timing(value)?),
            'r' => self
                .timings
                .last_mut()
                .ok_or(SdpErrorKind::RepeatWithoutTiming)?
                .repeats
                .push(value.to_owned()),
            'a' => self.attributes.push(parse_attribute(value)?),
            other => {
                tracing::trace!(kind = %other, "keeping SDP line of other type");
                self.other_lines.push((other, value.to_owned()));
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        let mut timings = self.timings;
        if timings.is_empty() {
            timings.push(Timing::default());
        }
        let mut other_lines = self.other_lines;
        other_lines.sort_by_key(|(kind, _)| session_line_rank(*kind));
        let mut media = self.media;
        for section in &mut media {
            section
                .other_lines
                .sort_by_key(|(kind, _)| media_line_rank(*kind));
        }
        Ok(SessionDescription {
            origin: self.origin.ok_or(SdpError::MissingOrigin)?,
            session_name: self.session_name.unwrap_or_else(|| "-".to_owned()),
            connection: self.connection,
            bandwidths: self.bandwidths,
            timings,
            attributes: self.attributes,
            media,
            other_lines,
        })
    }
}

fn media_line(media: &mut MediaDescription, kind: char, value: &str) -> Result<(), SdpErrorKind> {
    match kind {
        'c' if media.connection.is_none() => media.connection = Some(parse_connection(value)?),
        'b' => media.bandwidths.push(parse_bandwidth(value)?),
        'a' => media.attributes.push(parse_attribute(value)?),
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
            return Err(SdpErrorKind::NotInMedia(kind));
        }
        other => {
            // `i=`, `k=`, extra `c=` (multicast layering) and unknown types.
            if other == 'c' {
                parse_connection(value)?;
            }
            media.other_lines.push((other, value.to_owned()));
        }
    }
    Ok(())
}

/// `<type>=<value>` where type is one ASCII letter.
fn split_line(line: &str) -> Result<(char, &str), SdpErrorKind> {
    let (kind, value) = line.split_once('=').ok_or(SdpErrorKind::NotTypeValue)?;
    let mut chars = kind.chars();
    match (chars.next(), chars.next()) {
        (Some(kind), None) if kind.is_ascii_alphabetic() => Ok((kind, value)),
        _ => Err(SdpErrorKind::NotTypeValue),
    }
}

fn parse_origin(value: &str) -> Result<Origin, SdpErrorKind> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [
        username,
        session_id,
        session_version,
        network_type,
        address_type,
        address,
    ] = fields.as_slice()
    else {
        return Err(SdpErrorKind::Origin("expected 6 fields"));
    };
    if !session_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdpErrorKind::Origin("session id not a number"));
    }
    let session_version = session_version
        .parse()
        .map_err(|_| SdpErrorKind::Origin("session version not a number"))?;
    Ok(Origin {
        username: (*username).to_owned(),
        session_id: (*session_id).to_owned(),
        session_version,
        address: Connection {
            network_type: (*network_type).to_owned(),
            address_type: (*address_type).to_owned(),
            address: (*address).to_owned(),
        },
    })
}

fn parse_connection(value: &str) -> Result<Connection, SdpErrorKind> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [network_type, address_type, address] = fields.as_slice() else {
        return Err(SdpErrorKind::Connection("expected 3 fields"));
    };
    let connection = Connection {
        network_type: (*network_type).to_owned(),
        address_type: (*address_type).to_owned(),
        address: (*address).to_owned(),
    };
    // An address that claims to be IP must be one (host names are allowed for other types).
    let claims_ip = connection.network_type.eq_ignore_ascii_case("IN")
        && looks_numeric(&connection.address_type, address);
    if claims_ip && connection.ip().is_none() {
        return Err(SdpErrorKind::Connection("invalid IP address"));
    }
    Ok(connection)
}

/// Whether `address` looks like an IP literal of `address_type` (not a host name).
fn looks_numeric(address_type: &str, address: &str) -> bool {
    let address = address.split('/').next().unwrap_or_default();
    if address_type.eq_ignore_ascii_case("IP6") {
        address.contains(':')
    } else {
        address.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    }
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, SdpErrorKind> {
    let (kind, amount) = value
        .split_once(':')
        .ok_or(SdpErrorKind::Bandwidth("expected <type>:<value>"))?;
    if kind.is_empty() {
        return Err(SdpErrorKind::Bandwidth("empty type"));
    }
    let value = amount
        .trim()
        .parse()
        .map_err(|_| SdpErrorKind::Bandwidth("value not a number"))?;
    Ok(Bandwidth {
        kind: kind.to_owned(),
        value,
    })
}

fn parse_timing(value: &str) -> Result<Timing, SdpErrorKind> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [start, stop] = fields.as_slice() else {
        return Err(SdpErrorKind::Timing("expected 2 fields"));
    };
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| SdpErrorKind::Timing("time not a number"))
    };
    Ok(Timing {
        start: number(start)?,
        stop: number(stop)?,
        repeats: Vec::new(),
    })
}

fn parse_attribute(value: &str) -> Result<Attribute, SdpErrorKind> {
    let (name, value) = match value.split_once(':') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (value, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(SdpErrorKind::Attribute("bad attribute name"));
    }
    Ok(Attribute {
        name: name.to_owned(),
        value,
    })
}

/// `<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_media(value: &str) -> Result<MediaDescription, SdpErrorKind> {
    let mut fields = value.split_whitespace();
    let (Some(media), Some(port), Some(protocol)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(SdpErrorKind::Media(
            "expected <media> <port> <proto> <fmt> ...",
        ));
    };
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (port, None),
    };
    let port = port
        .parse()
        .map_err(|_| SdpErrorKind::Media("port not a number 0-65535"))?;
    let port_count = port_count
        .map(|c| c.parse())
        .transpose()
        .map_err(|_| SdpErrorKind::Media("port count not a number"))?;
    let formats: Vec<String> = fields.map(str::to_owned).collect();
    if formats.is_empty() && port != 0 {
        return Err(SdpErrorKind::Media("no formats"));
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        protocol: Protocol::from_token(protocol),
        formats,
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
        other_lines: Vec::new(),
    })
}
