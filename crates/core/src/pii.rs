//! Redaction of personal data (phone numbers, SIP URIs) in logs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static REVEAL: AtomicBool = AtomicBool::new(false);

/// Wraps a value whose `Display` would leak a phone number or address of record.
///
/// Printed redacted (all but the last 4 digits masked) unless [`Pii::reveal`] was switched on,
/// which the front ends do only when debug logging is explicitly asked for.
#[derive(Clone, Copy)]
pub struct Pii<T>(pub T);

impl Pii<()> {
    /// Show personal data in logs from now on (debug logging explicitly enabled).
    pub fn reveal(on: bool) {
        REVEAL.store(on, Ordering::Relaxed);
    }

    pub fn revealed() -> bool {
        REVEAL.load(Ordering::Relaxed)
    }
}

impl<T: fmt::Display> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        if Pii::revealed() {
            return f.write_str(&text);
        }
        f.write_str(&redact(&text))
    }
}

impl<T: fmt::Display> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Masks every digit of each run of 5 or more digits except the last 4, and the user part of
/// a SIP URI when it is not numeric (`sip:alice@host` → `sip:a***@host`).
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() || (chars[i] == '+' && next_is_digit(&chars, i)) {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || matches!(chars[i], ' ' | '-' | '.'))
            {
                i += 1;
            }
            // Separators belong to the number only when a digit follows them.
            while i > start && !chars[i - 1].is_ascii_digit() {
                i -= 1;
            }
            let run = &chars[start..i];
            let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
            if digits >= 5 && !looks_like_ipv4(run) {
                let mut seen = 0;
                for &c in run {
                    if c.is_ascii_digit() {
                        seen += 1;
                        out.push(if digits - seen < 4 { c } else { '*' });
                    } else {
                        out.push(c);
                    }
                }
            } else {
                out.extend(run);
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    mask_uri_users(&out)
}

fn looks_like_ipv4(run: &[char]) -> bool {
    let text: String = run.iter().collect();
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
}

fn next_is_digit(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(char::is_ascii_digit)
}

fn mask_uri_users(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_scheme(rest) {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let colon = tail.find(':').map_or(0, |c| c + 1);
        out.push_str(&tail[..colon]);
        let after = &tail[colon..];
        match after.find('@') {
            Some(at)
                if after[..at]
                    .chars()
                    .all(|c| !c.is_whitespace() && c != '>' && c != ';') =>
            {
                let user = &after[..at];
                if user.chars().any(|c| c.is_ascii_alphabetic()) {
                    let mut chars = user.chars();
                    if let Some(first) = chars.next() {
                        out.push(first);
                    }
                    out.push_str("***");
                } else {
                    out.push_str(user);
                }
                out.push('@');
                rest = &after[at + 1..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

fn find_scheme(text: &str) -> Option<usize> {
    ["sip:", "sips:", "tel:"]
        .iter()
        .filter_map(|s| text.find(s))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_long_numbers_but_last_four() {
        assert_eq!(redact("from +33612345678 ok"), "from +*******5678 ok");
        assert_eq!(redact("sip:0612345678@10.0.0.1"), "sip:******5678@10.0.0.1");
    }

    #[test]
    fn keeps_short_numbers_and_ports() {
        assert_eq!(redact("port 5060 code 486"), "port 5060 code 486");
        assert_eq!(redact("call 06 12 34 56 78."), "call ** ** ** 56 78.");
        assert_eq!(redact("06.12.34.56.78"), "**.**.**.56.78");
    }

    #[test]
    fn masks_named_users() {
        assert_eq!(
            redact("<sip:alice@127.0.0.1:5060>"),
            "<sip:a***@127.0.0.1:5060>"
        );
    }
}
