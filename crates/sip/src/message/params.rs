//! `;name=value` parameter lists (URI, name-addr and Via parameters).

use std::fmt;

use super::text::{is_token, read_quoted, split_outside};

/// One parameter. The value is kept as written (quoted values keep their quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// An ordered parameter list; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<Param>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`: `Some("")` for a parameter without value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Sets `name` (replacing an existing value, else appending).
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value,
            None => self.0.push(Param {
                name: name.to_owned(),
                value,
            }),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Option<&Param> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Parses the text after the first `;` of a parameter list, e.g. `tag=1;lr`.
    pub(crate) fn parse(s: &str) -> Option<Params> {
        let mut params = Vec::new();
        for part in split_outside(s, ';') {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part.trim(), None),
            };
            if !is_token(name) {
                return None;
            }
            if let Some(v) = value {
                let valid = if v.starts_with('"') {
                    matches!(read_quoted(v), Some((_, rest)) if rest.is_empty())
                } else {
                    !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '"')
                };
                if !valid {
                    return None;
                }
            }
            params.push(Param {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            });
        }
        Some(Params(params))
    }
}

/// Writes `;name=value` for every parameter.
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_access() {
        let p = Params::parse(r#" tag = abc ;lr; x="a;b" "#).unwrap();
        assert_eq!(p.get("TAG"), Some("abc"));
        assert_eq!(p.get("lr"), Some(""));
        assert_eq!(p.get("x"), Some(r#""a;b""#));
        assert_eq!(p.get("y"), None);
        assert_eq!(p.to_string(), r#";tag=abc;lr;x="a;b""#);
        assert!(Params::parse("a;;b").is_none());
        assert!(Params::parse("a=").is_none());
        assert!(Params::parse("a=\"x").is_none());
    }
}
