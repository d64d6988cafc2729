//! Digest authentication, client side (RFC 2617, RFC 7616, RFC 8760).
//!
//! ```
//! use homeagent_sip::auth::{Challenge, DigestAnswer};
//! use homeagent_sip::Method;
//! let challenge = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap();
//! let value = challenge
//!     .answer(&DigestAnswer {
//!         method: &Method::Register,
//!         uri: "sip:example.com",
//!         username: "alice",
//!         password: "secret",
//!         cnonce: "0a4f113b",
//!         nonce_count: 1,
//!     })
//!     .unwrap();
//! assert!(value.starts_with("Digest username=\"alice\""));
//! ```

use std::fmt::Write as _;

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::message::text::{is_token, quote, read_quoted, split_outside};
use crate::message::{Method, Response};

/// Digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        let digest: Vec<u8> = match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 | Algorithm::Sha256Sess => Sha256::digest(data.as_bytes()).to_vec(),
        };
        let mut hex = String::with_capacity(digest.len() * 2);
        for b in digest {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

/// Why a challenge cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("malformed challenge")]
    Malformed,
    #[error("missing {0} in challenge")]
    Missing(&'static str),
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Offered qop values (empty when the challenge had no qop: RFC 2069 mode).
    pub qop: Vec<String>,
    pub stale: bool,
}

/// What the answer to a challenge is computed from.
#[derive(Debug, Clone, Copy)]
pub struct DigestAnswer<'a> {
    pub method: &'a Method,
    /// The Request-URI as written in the request.
    pub uri: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    /// Client nonce from the caller's randomness.
    pub cnonce: &'a str,
    /// Number of requests sent with this nonce, starting at 1.
    pub nonce_count: u32,
}

impl Challenge {
    /// Parses one header value, e.g. `Digest realm="x", nonce="y", qop="auth"`.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let value = value.trim();
        let (scheme, rest) = value
            .split_once(char::is_whitespace)
            .ok_or(AuthError::NotDigest)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::NotDigest);
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = Vec::new();
        let mut stale = false;
        for part in split_outside(rest, ',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, raw) = part.split_once('=').ok_or(AuthError::Malformed)?;
            let name = name.trim();
            let raw = raw.trim();
            let value = if raw.starts_with('"') {
                match read_quoted(raw) {
                    Some((v, "")) => v,
                    _ => return Err(AuthError::Malformed),
                }
            } else if is_token(raw) || raw.contains(['/', ':', '@']) {
                raw.to_owned()
            } else {
                return Err(AuthError::Malformed);
            };
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                "qop" => {
                    qop = value
                        .split(',')
                        .map(|q| q.trim().to_ascii_lowercase())
                        .filter(|q| !q.is_empty())
                        .collect();
                }
                "algorithm" => {
                    algorithm = match value.to_ascii_uppercase().as_str() {
                        "MD5" => Algorithm::Md5,
                        "MD5-SESS" => Algorithm::Md5Sess,
                        "SHA-256" => Algorithm::Sha256,
                        "SHA-256-SESS" => Algorithm::Sha256Sess,
                        _ => return Err(AuthError::UnsupportedAlgorithm(value)),
                    }
                }
                _ => {}
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(AuthError::Missing("realm"))?,
            nonce: nonce.ok_or(AuthError::Missing("nonce"))?,
            opaque,
            algorithm,
            qop,
            stale,
        })
    }

    /// The first usable Digest challenge of a 401/407 response, with the name of the
    /// header that carries the answer (`Authorization` or `Proxy-Authorization`).
    pub fn from_response(response: &Response) -> Option<(Challenge, &'static str)> {
        let (ask, answer) = match response.status {
            401 => ("WWW-Authenticate", "Authorization"),
            407 => ("Proxy-Authenticate", "Proxy-Authorization"),
            _ => return None,
        };
        response
            .headers
            .get_all(ask)
            .filter_map(|v| Challenge::parse(v).ok())
            .find(|c| c.qop.is_empty() || c.qop.iter().any(|q| q == "auth"))
            .map(|c| (c, answer))
    }

    /// Computes the `Authorization` / `Proxy-Authorization` header value. Uses qop=auth
    /// when offered, else the RFC 2069 form (no qop, nc, cnonce unless `-sess`).
    pub fn answer(&self, a: &DigestAnswer<'_>) -> Result<String, AuthError> {
        let use_qop = !self.qop.is_empty();
        if use_qop && !self.qop.iter().any(|q| q == "auth") {
            return Err(AuthError::UnsupportedQop(self.qop.join(",")));
        }
        let alg = self.algorithm;
        let mut ha1 = alg.hash(&format!("{}:{}:{}", a.username, self.realm, a.password));
        if alg.is_sess() {
            ha1 = alg.hash(&format!("{ha1}:{}:{}", self.nonce, a.cnonce));
        }
        let ha2 = alg.hash(&format!("{}:{}", a.method, a.uri));
        let nc = format!("{:08x}", a.nonce_count);
        let response = if use_qop {
            alg.hash(&format!(
                "{ha1}:{}:{nc}:{}:auth:{ha2}",
                self.nonce, a.cnonce
            ))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={}",
            quote(a.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(a.uri),
            alg.as_str(),
        );
        if use_qop || alg.is_sess() {
            out.push_str(&format!(", cnonce={}", quote(a.cnonce)));
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(&format!(", opaque={}", quote(opaque)));
        }
        if use_qop {
            out.push_str(&format!(", qop=auth, nc={nc}"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extracts `name="value"` or `name=value` from an answer.
    fn field<'a>(value: &'a str, name: &str) -> &'a str {
        let start = value.find(&format!(" {name}=")).unwrap() + name.len() + 2;
        let rest = &value[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',']).unwrap_or(rest.len());
        &rest[..end]
    }

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 (method GET, as in the RFC).
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(c.qop, vec!["auth", "auth-int"]);
        assert_eq!(c.algorithm, Algorithm::Md5);
        let v = c
            .answer(&DigestAnswer {
                method: &Method::Other("GET".into()),
                uri: "/dir/index.html",
                username: "Mufasa",
                password: "Circle Of Life",
                cnonce: "0a4f113b",
                nonce_count: 1,
            })
            .unwrap();
        assert_eq!(field(&v, "response"), "6629fae49393a05397450978507c4ef1");
        assert_eq!(field(&v, "nc"), "00000001");
        assert_eq!(field(&v, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");
        assert_eq!(field(&v, "qop"), "auth");
    }

    fn rfc7616(alg: &str) -> String {
        let c = Challenge::parse(&format!(
            "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\", algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        ))
        .unwrap();
        c.answer(&DigestAnswer {
            method: &Method::Other("GET".into()),
            uri: "/dir/index.html",
            username: "Mufasa",
            password: "Circle of Life",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            nonce_count: 1,
        })
        .unwrap()
    }

    #[test]
    fn rfc7616_examples() {
        // RFC 7616 §3.9.1.
        let v = rfc7616("SHA-256");
        assert_eq!(
            field(&v, "response"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(field(&v, "algorithm"), "SHA-256");
        assert_eq!(
            field(&rfc7616("MD5"), "response"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn no_qop_and_sess() {
        // Values computed independently (Python hashlib) for these inputs.
        let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let a = DigestAnswer {
            method: &Method::Register,
            uri: "sip:example.com",
            username: "u",
            password: "p",
            cnonce: "c",
            nonce_count: 1,
        };
        let v = c.answer(&a).unwrap();
        assert_eq!(field(&v, "response"), "a1897aa2a5cccae1807d282077e8f518");
        assert!(!v.contains("qop") && !v.contains("cnonce") && !v.contains(" nc="));
        let sess = Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=MD5-sess, qop=auth"#)
            .unwrap();
        let v = sess.answer(&a).unwrap();
        assert_eq!(field(&v, "response"), "70f9be09db3ca1258aa3e7ff63a7833a");
        assert_eq!(field(&v, "cnonce"), "c");
    }

    #[test]
    fn parse_variants_and_errors() {
        let c =
            Challenge::parse(r#"digest REALM="a, b", nonce=xyz, stale=TRUE, foo="bar""#).unwrap();
        assert_eq!(c.realm, "a, b");
        assert_eq!(c.nonce, "xyz");
        assert!(c.stale);
        assert!(c.qop.is_empty());
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(AuthError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"x\""),
            Err(AuthError::Missing("realm"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"x\", nonce=\"y\", algorithm=SHA-512-256"),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            Challenge::parse("Digest realm=\"x"),
            Err(AuthError::Malformed)
        );
        let int_only =
            Challenge::parse("Digest realm=\"x\", nonce=\"y\", qop=\"auth-int\"").unwrap();
        let a = DigestAnswer {
            method: &Method::Invite,
            uri: "sip:x",
            username: "u",
            password: "p",
            cnonce: "c",
            nonce_count: 1,
        };
        assert!(matches!(
            int_only.answer(&a),
            Err(AuthError::UnsupportedQop(_))
        ));
    }
}
