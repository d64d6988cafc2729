//! From the CRM's JSON answer to the rows of the customer card.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::{ContextError, CustomerContext, FieldMapping, MAX_VALUE_CHARS};

/// Labels are cut to this many characters.
const MAX_LABEL_CHARS: usize = 100;
/// Without a mapping, at most this many top-level fields become rows.
const MAX_DEFAULT_ROWS: usize = 64;

/// A JSON object whose top-level members keep their document order (`serde_json::Map`
/// sorts them unless the workspace-wide `preserve_order` feature is on).
#[derive(PartialEq)]
pub(crate) struct Document(Vec<(String, Value)>);

impl Document {
    /// Parses a CRM answer. Errors say what is wrong, never what the body contains.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ContextError> {
        let text =
            std::str::from_utf8(body).map_err(|_| ContextError::Garbage("not UTF-8".into()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        serde_json::from_str(text).map_err(|e| {
            ContextError::Garbage(
                match e.classify() {
                    serde_json::error::Category::Data => "not a JSON object",
                    _ => "not JSON",
                }
                .into(),
            )
        })
    }

    /// The card: the mapped rows, or every top-level scalar without a mapping.
    pub(crate) fn card(&self, mapping: &[FieldMapping]) -> CustomerContext {
        let fields = if mapping.is_empty() {
            self.0
                .iter()
                .filter(|(_, value)| {
                    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
                })
                .take(MAX_DEFAULT_ROWS)
                .map(|(key, value)| (plain_text(key, MAX_LABEL_CHARS), value_text(value)))
                .collect()
        } else {
            mapping
                .iter()
                .filter_map(|field| {
                    let value = self.resolve(&field.path)?;
                    let text = value_text(value);
                    Some((plain_text(&field.label, MAX_LABEL_CHARS), text))
                })
                .collect()
        };
        CustomerContext { fields }
    }

    /// The value at a dotted path or JSON Pointer; `None` if missing or `null`.
    fn resolve(&self, path: &str) -> Option<&Value> {
        let mut segments: Box<dyn Iterator<Item = String>> = match path.strip_prefix('/') {
            Some(pointer) => Box::new(pointer.split('/').map(unescape_pointer)),
            None => Box::new(path.split('.').map(String::from)),
        };
        let first = segments.next()?;
        let mut value = &self.0.iter().find(|(key, _)| *key == first)?.1;
        for segment in segments {
            value = match value {
                Value::Object(members) => members.get(&segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!value.is_null()).then_some(value)
    }
}

/// One JSON Pointer reference token, unescaped (RFC 6901: `~1` is `/`, `~0` is `~`).
fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// A value as card text: strings as they are, numbers and booleans printed, arrays and
/// objects as their JSON text; then made plain and capped.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => plain_text(text, MAX_VALUE_CHARS),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => plain_text(&value.to_string(), MAX_VALUE_CHARS),
    }
}

/// `text` with line breaks and tabs turned into spaces, other control characters and bidi
/// overrides removed, trimmed, and cut to `max_chars` (an ellipsis marks the cut). Markup is
/// kept as it is: the UI shows text, never HTML.
pub(crate) fn plain_text(text: &str, max_chars: usize) -> String {
    let mut kept = text
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}' => Some(' '),
            c if c.is_control() || is_bidi_control(c) => None,
            c => Some(c),
        })
        .skip_while(|c| c.is_whitespace());
    let mut plain: String = kept.by_ref().take(max_chars).collect();
    if kept.next().is_some() {
        plain.push('…');
    } else {
        plain.truncate(plain.trim_end().len());
    }
    plain
}

/// Embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) can make a card read
/// differently from what it holds.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Value>()? {
            members.push(member);
        }
        Ok(Document(members))
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Document({} members)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(json: &str) -> Document {
        match Document::parse(json.as_bytes()) {
            Ok(document) => document,
            Err(e) => panic!("test JSON must parse: {e}"),
        }
    }

    fn rows(context: &CustomerContext) -> Vec<(&str, &str)> {
        context
            .fields
            .iter()
            .map(|(label, value)| (label.as_str(), value.as_str()))
            .collect()
    }

    const ANSWER: &str = r#"{
        "zeta": "first", "id": 42, "vip": true, "score": -1.5, "nothing": null,
        "customer": {"name": "Ada Lovelace", "address": {"city": "London"}, "a/b": "slash"},
        "orders": [{"id": "O-1"}, {"id": "O-2"}], "alpha": "last"
    }"#;

    #[test]
    fn default_mapping_is_top_level_scalars_in_document_order() {
        let card = document(ANSWER).card(&[]);
        assert_eq!(
            rows(&card),
            [
                ("zeta", "first"),
                ("id", "42"),
                ("vip", "true"),
                ("score", "-1.5"),
                ("alpha", "last")
            ]
        );
    }

    #[test]
    fn mapping_follows_nested_paths_in_mapping_order() {
        let mapping = [
            FieldMapping::new("City", "customer.address.city"),
            FieldMapping::new("Name", "/customer/name"),
            FieldMapping::new("Slash", "/customer/a~1b"),
            FieldMapping::new("Second order", "orders.1.id"),
            FieldMapping::new("Missing", "customer.phone"),
            FieldMapping::new("Null", "nothing"),
            FieldMapping::new("Out of range", "orders.7.id"),
            FieldMapping::new("Orders", "orders"),
            FieldMapping::new("Id", "id"),
        ];
        let card = document(ANSWER).card(&mapping);
        assert_eq!(
            rows(&card),
            [
                ("City", "London"),
                ("Name", "Ada Lovelace"),
                ("Slash", "slash"),
                ("Second order", "O-2"),
                ("Orders", r#"[{"id":"O-1"},{"id":"O-2"}]"#),
                ("Id", "42"),
            ]
        );
    }

    #[test]
    fn values_are_plain_capped_text() {
        let long = "x".repeat(MAX_VALUE_CHARS + 10);
        let json = format!(
            r#"{{"html": "<img src=x onerror=alert(1)>", "ctl": "a\u0000b\u001b[31mc\nd\u202ee\u0085", "long": "{long}"}}"#
        );
        let card = document(&json).card(&[]);
        assert_eq!(card.value("html"), Some("<img src=x onerror=alert(1)>"));
        assert_eq!(card.value("ctl"), Some("ab[31mc de"));
        let capped = card.value("long").unwrap_or_default();
        assert_eq!(capped.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(capped.ends_with('…'));
    }

    #[test]
    fn unusable_answers_are_garbage() {
        let cases: [(&[u8], &str); 6] = [
            (b"\xff\xfe{}", "not UTF-8"),
            (b"<html>502</html>", "not JSON"),
            (b"{\"a\": 1} trailing", "not JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b"\"Ada Lovelace\"", "not a JSON object"),
            (b"", "not JSON"),
        ];
        for (body, reason) in cases {
            assert_eq!(
                Document::parse(body),
                Err(ContextError::Garbage(reason.into())),
                "{body:?}"
            );
        }
        assert!(Document::parse("\u{feff}{\"a\": 1}".as_bytes()).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            Document::parse(deep.as_bytes()),
            Err(ContextError::Garbage("not JSON".into()))
        );
    }
}
