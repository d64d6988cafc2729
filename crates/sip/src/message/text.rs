//! Lexical helpers shared by the header parsers (RFC 3261 §25.1).

/// `token` characters.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Splits `s` on `sep` where it is outside quoted strings and `<...>`.
pub(crate) fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    let mut in_angle = false;
    for (i, c) in s.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' if !in_angle => in_quote = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            c if c == sep && !in_angle => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Reads a quoted string at the start of `s` (which must begin with `"`), resolving
/// quoted-pairs. Returns the content and the rest after the closing quote.
pub(crate) fn read_quoted(s: &str) -> Option<(String, &str)> {
    let inner = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((out, &inner[i + 1..]));
        } else {
            out.push(c);
        }
    }
    None
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Decodes `%XX` escapes; `None` on a bad escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Escapes every byte of `s` for which `allowed` is false.
pub(crate) fn percent_encode(s: &str, allowed: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if allowed(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3261 `unreserved`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Characters allowed unescaped in the user part of a SIP URI.
pub(crate) fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,;?/".contains(&b)
}

/// Characters allowed unescaped in the password part of a SIP URI.
pub(crate) fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,".contains(&b)
}

/// Parses `host[:port]`, with IPv6 references in brackets. The host is returned without
/// brackets.
pub(crate) fn parse_hostport(s: &str) -> Option<(String, Option<u16>)> {
    let (host, rest) = if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']')?;
        let host = &inner[..close];
        let valid = host.contains(':')
            && host
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return None;
        }
        (host, &inner[close + 1..])
    } else {
        let end = s.find(':').unwrap_or(s.len());
        let host = &s[..end];
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return None;
        }
        (host, &s[end..])
    };
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => None,
        None => return None,
        Some(p) => Some(parse_port(p)?),
    };
    Some((host.to_owned(), port))
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Writes a host, adding brackets around an IPv6 address.
pub(crate) fn write_host(out: &mut String, host: &str, port: Option<u16>) {
    if host.contains(':') {
        out.push('[');
        out.push_str(host);
        out.push(']');
    } else {
        out.push_str(host);
    }
    if let Some(port) = port {
        out.push(':');
        out.push_str(&port.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let parts = split_outside(r#""a,\"b" <sip:x;a=b,c>;p, <sip:y>"#, ',');
        assert_eq!(parts, vec![r#""a,\"b" <sip:x;a=b,c>;p"#, " <sip:y>"]);
    }

    #[test]
    fn quoted_round_trip() {
        let q = quote(r#"a "b" \c"#);
        let (back, rest) = read_quoted(&q).unwrap();
        assert_eq!(back, r#"a "b" \c"#);
        assert_eq!(rest, "");
        assert!(read_quoted("\"unterminated").is_none());
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%40b%2c").unwrap(), "a@b,");
        assert!(percent_decode("a%4").is_none());
        assert!(percent_decode("%ff").is_none());
        assert_eq!(percent_encode("a@b c", is_user_char), "a%40b%20c");
    }

    #[test]
    fn hostport() {
        assert_eq!(
            parse_hostport("[::1]:5060"),
            Some(("::1".into(), Some(5060)))
        );
        assert_eq!(
            parse_hostport("example.com"),
            Some(("example.com".into(), None))
        );
        assert_eq!(parse_hostport("example.com:"), None);
        assert_eq!(parse_hostport("example.com:99999"), None);
        assert_eq!(parse_hostport("[zz]"), None);
        assert_eq!(parse_hostport("a b"), None);
    }
}
