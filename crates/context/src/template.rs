//! Filling the URL template from the call.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;

use crate::{CallInfo, ContextError, TemplateError};

/// Everything but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Fills `template` from `call`: `{from}`, `{to}` and `{header:NAME}` (the first INVITE header
/// of that name, case-insensitive, trimmed; empty when absent). Each value is percent-encoded,
/// keeping only the RFC 3986 unreserved characters, so it cannot change the URL's structure.
///
/// Fails on an unknown placeholder, an unbalanced brace, or a result that is not an absolute
/// `http(s)` URL with a host.
pub fn fill_template(template: &str, call: &CallInfo) -> Result<String, ContextError> {
    let mut filled = String::with_capacity(template.len() + 64);
    let mut chars = template.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some((_, '}')) => break,
                        Some((_, '{')) | None => {
                            return Err(TemplateError::UnbalancedBrace(offset).into());
                        }
                        Some((_, c)) => name.push(c),
                    }
                }
                let value = placeholder_value(&name, call)
                    .ok_or(TemplateError::UnknownPlaceholder(name))?;
                filled.extend(utf8_percent_encode(value, NOT_UNRESERVED));
            }
            '}' => return Err(TemplateError::UnbalancedBrace(offset).into()),
            c => filled.push(c),
        }
    }
    parse_http_url(&filled)?;
    Ok(filled)
}

/// The value of one placeholder, `None` if the name is unknown.
fn placeholder_value<'a>(name: &str, call: &'a CallInfo) -> Option<&'a str> {
    match name {
        "from" => Some(&call.from),
        "to" => Some(&call.to),
        _ => {
            let header = name.strip_prefix("header:")?.trim();
            if header.is_empty() {
                return None;
            }
            Some(call.header(header).unwrap_or(""))
        }
    }
}

/// `url` as an absolute http(s) URL with a host. The error names the reason, not the URL
/// (which holds call data).
pub(crate) fn parse_http_url(url: &str) -> Result<Url, TemplateError> {
    let parsed = Url::parse(url).map_err(|e| TemplateError::NotHttpUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TemplateError::NotHttpUrl(format!(
            "scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(TemplateError::NotHttpUrl("no host".into()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallInfo {
        CallInfo {
            from: "+33 6 12&34".into(),
            to: "4000".into(),
            headers: vec![
                ("X-Customer-Id".into(), " Ünïcode & co/é ".into()),
                ("User-to-User".into(), "04a1;encoding=hex".into()),
            ],
        }
    }

    #[test]
    fn fills_and_encodes_every_placeholder() {
        let url = fill_template(
            "https://crm.test/c?from={from}&to={to}&id={header:x-customer-id}&uui={header:User-to-User}",
            &call(),
        );
        assert_eq!(
            url.as_deref(),
            Ok("https://crm.test/c?from=%2B33%206%2012%2634&to=4000\
                &id=%C3%9Cn%C3%AFcode%20%26%20co%2F%C3%A9&uui=04a1%3Bencoding%3Dhex")
        );
    }

    #[test]
    fn unreserved_characters_are_kept() {
        let call = CallInfo {
            from: "AZaz09-._~".into(),
            ..CallInfo::default()
        };
        assert_eq!(
            fill_template("http://crm.test/{from}", &call).as_deref(),
            Ok("http://crm.test/AZaz09-._~")
        );
    }

    #[test]
    fn absent_header_is_empty() {
        assert_eq!(
            fill_template("http://crm.test/?id={header:X-Missing}", &call()).as_deref(),
            Ok("http://crm.test/?id=")
        );
    }

    #[test]
    fn a_value_cannot_change_the_host_or_path() {
        let call = CallInfo {
            from: "evil.test/../admin?x=1#".into(),
            ..CallInfo::default()
        };
        let url = fill_template("https://crm.test/c/{from}", &call).unwrap_or_default();
        let parsed = parse_http_url(&url)
            .map(|u| (u.host_str().map(String::from), u.query().map(String::from)));
        assert_eq!(parsed, Ok((Some("crm.test".into()), None)));
        assert_eq!(url, "https://crm.test/c/evil.test%2F..%2Fadmin%3Fx%3D1%23");
    }

    #[test]
    fn template_errors() {
        let cases: [(&str, TemplateError); 7] = [
            (
                "https://crm.test/{caller}",
                TemplateError::UnknownPlaceholder("caller".into()),
            ),
            (
                "https://crm.test/{header:}",
                TemplateError::UnknownPlaceholder("header:".into()),
            ),
            ("https://crm.test/{from", TemplateError::UnbalancedBrace(17)),
            ("https://crm.test/from}", TemplateError::UnbalancedBrace(21)),
            (
                "https://crm.test/{{from}}",
                TemplateError::UnbalancedBrace(17),
            ),
            (
                "ftp://crm.test/{from}",
                TemplateError::NotHttpUrl("scheme \"ftp\" is not http or https".into()),
            ),
            (
                "/relative?{from}",
                TemplateError::NotHttpUrl("relative URL without a base".into()),
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(
                fill_template(template, &call()),
                Err(ContextError::Template(expected)),
                "{template}"
            );
        }
        assert!(matches!(
            fill_template("", &call()),
            Err(ContextError::Template(TemplateError::NotHttpUrl(_)))
        ));
    }
}
