//! Header list and typed header values.

use std::fmt;

use super::Method;
use super::params::Params;
use super::text::{is_token, parse_hostport, quote, read_quoted, write_host};
use super::uri::Uri;

/// One header line. `name` is the canonical spelling for known headers (compact forms
/// expanded), else as received. `value` is unfolded and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The headers of a message, in order. Unknown headers are kept raw.
///
/// Via, Contact, Route and Record-Route lines holding several comma-separated values are
/// split into one entry per value when parsed. `Content-Length` is never stored: the printer
/// writes it from the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

/// Known header names: (canonical, compact form).
const KNOWN: &[(&str, Option<&str>)] = &[
    ("Via", Some("v")),
    ("From", Some("f")),
    ("To", Some("t")),
    ("Call-ID", Some("i")),
    ("CSeq", None),
    ("Contact", Some("m")),
    ("Content-Length", Some("l")),
    ("Content-Type", Some("c")),
    ("Content-Encoding", Some("e")),
    ("Supported", Some("k")),
    ("Subject", Some("s")),
    ("Event", Some("o")),
    ("Refer-To", Some("r")),
    ("Referred-By", Some("b")),
    ("Allow-Events", Some("u")),
    ("Session-Expires", Some("x")),
    ("Accept-Contact", Some("a")),
    ("Reject-Contact", Some("j")),
    ("Request-Disposition", Some("d")),
    ("Identity", Some("y")),
    ("Max-Forwards", None),
    ("Route", None),
    ("Record-Route", None),
    ("Expires", None),
    ("Min-Expires", None),
    ("Allow", None),
    ("Require", None),
    ("Proxy-Require", None),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Server", None),
    ("WWW-Authenticate", None),
    ("Proxy-Authenticate", None),
    ("Authorization", None),
    ("Proxy-Authorization", None),
    ("Accept", None),
    ("Retry-After", None),
    ("Warning", None),
    ("RAck", None),
    ("RSeq", None),
    ("Replaces", None),
    ("Call-Info", None),
    ("Alert-Info", None),
];

/// Headers whose comma-separated values are split into separate entries.
const MULTI: &[&str] = &["Via", "Contact", "Route", "Record-Route"];

/// The canonical spelling of a header name (compact forms expanded).
pub fn canonical_name(name: &str) -> &str {
    for (full, compact) in KNOWN {
        if full.eq_ignore_ascii_case(name) || compact.is_some_and(|c| c.eq_ignore_ascii_case(name))
        {
            return full;
        }
    }
    name
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header (use `push` twice for two values).
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: canonical_name(name).to_owned(),
            value: value.into(),
        });
    }

    /// Inserts a header before every other (e.g. a new top Via).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name: canonical_name(name).to_owned(),
                value: value.into(),
            },
        );
    }

    /// Replaces all headers named `name` by one, at the position of the first.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = canonical_name(name);
        let value = value.into();
        match self.position(name) {
            Some(i) => {
                self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
                let at = i.min(self.0.len());
                self.0.insert(
                    at,
                    Header {
                        name: name.to_owned(),
                        value,
                    },
                );
            }
            None => self.push(name, value),
        }
    }

    /// Removes every header named `name`.
    pub fn remove(&mut self, name: &str) {
        let name = canonical_name(name);
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// The first value of `name` (compact and full names are equivalent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical_name(name).to_owned();
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The top Via, if present and well formed.
    pub fn via(&self) -> Option<Via> {
        self.get("Via").and_then(Via::parse)
    }

    /// Every well-formed Via, top first.
    pub fn vias(&self) -> Vec<Via> {
        self.get_all("Via").filter_map(Via::parse).collect()
    }

    /// Replaces the top Via.
    pub fn set_via(&mut self, via: &Via) {
        if let Some(h) = self.0.iter_mut().find(|h| h.name == "Via") {
            h.value = via.to_string();
        } else {
            self.push_front("Via", via.to_string());
        }
    }

    pub fn from(&self) -> Option<NameAddr> {
        self.get("From").and_then(NameAddr::parse)
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.get("To").and_then(NameAddr::parse)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.get("Call-ID")
            .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.get("CSeq").and_then(CSeq::parse)
    }

    /// Contacts that parse (a `*` Contact is not returned).
    pub fn contacts(&self) -> Vec<NameAddr> {
        self.get_all("Contact")
            .filter_map(NameAddr::parse)
            .collect()
    }

    pub fn routes(&self) -> Vec<NameAddr> {
        self.get_all("Route").filter_map(NameAddr::parse).collect()
    }

    pub fn record_routes(&self) -> Vec<NameAddr> {
        self.get_all("Record-Route")
            .filter_map(NameAddr::parse)
            .collect()
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.get("Max-Forwards").and_then(parse_u32)
    }

    pub fn expires(&self) -> Option<u32> {
        self.get("Expires").and_then(parse_u32)
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get("Content-Type")
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Adds a parsed header line, splitting multi-value headers.
    pub(crate) fn push_parsed(&mut self, name: &str, value: &str) {
        let name = canonical_name(name);
        if MULTI.contains(&name) {
            for part in super::text::split_outside(value, ',') {
                let part = part.trim();
                if !part.is_empty() {
                    self.push(name, part);
                }
            }
        } else {
            self.push(name, value);
        }
    }
}

pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `"Display" <uri>;params` (From, To, Contact, Route, Record-Route, Refer-To...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Unquoted display name.
    pub display_name: Option<String>,
    pub uri: Uri,
    /// Header parameters (after `>`), e.g. `tag`, `expires`.
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Params::new(),
        }
    }

    /// Parses a single value; `None` when malformed.
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        let (display_name, rest) = if s.starts_with('"') {
            let (name, rest) = read_quoted(s)?;
            (Some(name), rest.trim_start())
        } else if let Some(lt) = s.find('<') {
            let words: Vec<&str> = s[..lt].split_whitespace().collect();
            // Tokens, leniently also allowing non-ASCII letters seen in the wild.
            let word_ok = |w: &&str| {
                w.bytes()
                    .all(|b| b >= 0x80 || super::text::is_token_char(b))
            };
            if !words.iter().all(word_ok) {
                return None;
            }
            let name = (!words.is_empty()).then(|| words.join(" "));
            (name, &s[lt..])
        } else {
            // addr-spec: parameters after the URI belong to the header.
            let (uri, params) = s.split_once(';').unwrap_or((s, ""));
            if uri.contains(['?', ',', '"']) {
                return None;
            }
            return Some(NameAddr {
                display_name: None,
                uri: uri.trim().parse().ok()?,
                params: parse_header_params(params)?,
            });
        };
        let inner = rest.strip_prefix('<')?;
        let close = inner.find('>')?;
        let uri = inner[..close].trim().parse().ok()?;
        let after = inner[close + 1..].trim_start();
        let params = if after.is_empty() {
            Params::new()
        } else {
            parse_header_params(after.strip_prefix(';')?)?
        };
        Some(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").filter(|t| !t.is_empty())
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }
}

fn parse_header_params(s: &str) -> Option<Params> {
    if s.trim().is_empty() {
        return Some(Params::new());
    }
    Params::parse(s)
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{} ", quote(name))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// A Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Uppercase transport, e.g. `UDP`, `TCP`, `TLS`, `WS`, `WSS`.
    pub transport: String,
    /// sent-by host, without IPv6 brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

/// RFC 3261 magic cookie that starts every compliant branch.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

impl Via {
    pub fn new(transport: &str, host: &str, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            params,
        }
    }

    /// Parses a single Via value; `None` when malformed.
    pub fn parse(s: &str) -> Option<Via> {
        let mut parts = s.trim().splitn(3, '/');
        let name = parts.next()?.trim();
        let version = parts.next()?.trim();
        let rest = parts.next()?.trim_start();
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        let end = rest.find(char::is_whitespace)?;
        let transport = &rest[..end];
        if !is_token(transport) {
            return None;
        }
        let rest = rest[end..].trim_start();
        let (sent_by, params) = rest.split_once(';').unwrap_or((rest, ""));
        // A trailing comment `(...)` is allowed after sent-by; drop it.
        let sent_by = sent_by.split('(').next().unwrap_or("");
        let sent_by: String = sent_by.split_whitespace().collect();
        let (host, port) = parse_hostport(&sent_by)?;
        Some(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params: parse_header_params(params)?,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").filter(|b| !b.is_empty())
    }

    pub fn received(&self) -> Option<&str> {
        self.params.get("received").filter(|r| !r.is_empty())
    }

    /// `None`: no rport; `Some(None)`: rport without value; `Some(Some(p))`: with value.
    pub fn rport(&self) -> Option<Option<u16>> {
        let value = self.params.get("rport")?;
        Some(value.parse().ok())
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sent_by = String::new();
        write_host(&mut sent_by, &self.host, self.port);
        write!(f, "SIP/2.0/{} {}{}", self.transport, sent_by, self.params)
    }
}

/// A CSeq value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Option<CSeq> {
        let mut words = s.split_whitespace();
        let seq = parse_u32(words.next()?)?;
        let method = words.next()?;
        if words.next().is_some() || !is_token(method) {
            return None;
        }
        Some(CSeq {
            seq,
            method: Method::from(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        let mut h = Headers::new();
        h.push_parsed(
            "v",
            "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2",
        );
        h.push_parsed("cALL-id", "abc");
        h.push_parsed("X-Custom", "raw, value");
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("call-id"), Some("abc"));
        assert_eq!(h.get("i"), Some("abc"));
        assert_eq!(h.get("x-custom"), Some("raw, value"));
        assert_eq!(h.vias().len(), 2);
        assert_eq!(h.via().unwrap().host, "a");
        h.set("Call-ID", "def");
        assert_eq!(h.get_all("Call-ID").collect::<Vec<_>>(), vec!["def"]);
        h.remove("v");
        assert!(h.via().is_none());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""Bob \"B\" <x>" <sip:bob@b.com;transport=tcp>;tag=12"#).unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"Bob "B" <x>"#));
        assert_eq!(n.uri.params.get("transport"), Some("tcp"));
        assert_eq!(n.tag(), Some("12"));
        assert_eq!(NameAddr::parse(&n.to_string()), Some(n));

        let n = NameAddr::parse("Bob  Smith <sip:b@c>").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("Bob Smith"));
        let n = NameAddr::parse("sip:b@c;tag=x").unwrap();
        assert_eq!(n.tag(), Some("x"));
        assert!(n.uri.params.is_empty());
        let n = NameAddr::parse("<tel:+123>;expires=60").unwrap();
        assert_eq!(n.params.get("expires"), Some("60"));
        for bad in [
            "",
            "<sip:a@b",
            "\"x <sip:a@b>",
            "<sip:a@b> junk",
            "<nouri>",
            "*",
        ] {
            assert!(NameAddr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn via_forms() {
        let v = Via::parse(
            "SIP / 2.0 / udp  [2001:db8::9]:5070 ; branch=z9hG4bKx ;rport;received=10.0.0.1",
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "2001:db8::9");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("10.0.0.1"));
        assert_eq!(Via::parse(&v.to_string()), Some(v));
        let v = Via::parse("SIP/2.0/TCP h:1;rport=555").unwrap();
        assert_eq!(v.rport(), Some(Some(555)));
        for bad in [
            "",
            "SIP/2.0 h",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h:x",
        ] {
            assert!(Via::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cseq_forms() {
        let c = CSeq::parse(" 42   INVITE ").unwrap();
        assert_eq!(c.seq, 42);
        assert_eq!(c.method, Method::Invite);
        assert_eq!(c.to_string(), "42 INVITE");
        for bad in [
            "",
            "x INVITE",
            "-1 INVITE",
            "1",
            "1 A B",
            "99999999999 INVITE",
        ] {
            assert!(CSeq::parse(bad).is_none(), "{bad}");
        }
    }
}
