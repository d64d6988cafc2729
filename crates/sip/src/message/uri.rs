//! SIP, SIPS, tel and other URIs (RFC 3261 §19.1, RFC 3966).

use std::fmt;
use std::str::FromStr;

use super::params::Params;
use super::text::{
    is_password_char, is_user_char, parse_hostport, percent_decode, percent_encode, write_host,
};

/// A URI scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other scheme, lowercase.
    Other(String),
}

impl Scheme {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A URI.
///
/// - `sip`/`sips`: `user` and `password` are unescaped; `host` is without IPv6 brackets;
///   params and headers are kept as written.
/// - `tel`: `user` holds the number as written, `host` is empty, `params` are parsed.
/// - other schemes: `host` holds everything after the `:` verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&...` headers, as written.
    pub headers: Vec<(String, String)>,
}

/// Why a URI could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("missing or invalid scheme")]
    Scheme,
    #[error("invalid escape in user part")]
    Escape,
    #[error("invalid host or port")]
    HostPort,
    #[error("invalid parameter")]
    Param,
    #[error("invalid header")]
    Header,
}

impl Uri {
    /// A `sip:` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_owned),
            password: None,
            host: host.to_owned(),
            port,
            params: Params::new(),
            headers: Vec::new(),
        }
    }

    /// True for the `sips` scheme.
    pub fn is_secure(&self) -> bool {
        self.scheme == Scheme::Sips
    }

    /// The URI without params and headers, e.g. for a To/From address of record.
    pub fn without_params(&self) -> Uri {
        Uri {
            params: Params::new(),
            headers: Vec::new(),
            ..self.clone()
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Uri, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::Scheme)?;
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !valid_scheme || rest.contains(|c: char| c.is_whitespace()) {
            return Err(UriError::Scheme);
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            other => Scheme::Other(other.to_owned()),
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => parse_sip(scheme, rest),
            Scheme::Tel => {
                let (number, params) = rest.split_once(';').unwrap_or((rest, ""));
                if number.is_empty() {
                    return Err(UriError::HostPort);
                }
                Ok(Uri {
                    scheme,
                    user: Some(number.to_owned()),
                    password: None,
                    host: String::new(),
                    port: None,
                    params: parse_params(params)?,
                    headers: Vec::new(),
                })
            }
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(UriError::HostPort);
                }
                Ok(Uri {
                    scheme,
                    user: None,
                    password: None,
                    host: rest.to_owned(),
                    port: None,
                    params: Params::new(),
                    headers: Vec::new(),
                })
            }
        }
    }
}

fn parse_sip(scheme: Scheme, rest: &str) -> Result<Uri, UriError> {
    let (userinfo, rest) = match rest.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let user = percent_decode(user).ok_or(UriError::Escape)?;
            let password = password
                .map(|p| percent_decode(p).ok_or(UriError::Escape))
                .transpose()?;
            (Some(user), password)
        }
    };
    let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
    let (hostport, params) = match rest.split_once(';') {
        Some((_, "")) => return Err(UriError::Param),
        Some(split) => split,
        None => (rest, ""),
    };
    let (host, port) = parse_hostport(hostport).ok_or(UriError::HostPort)?;
    let headers = if headers.is_empty() {
        Vec::new()
    } else {
        headers
            .split('&')
            .map(|h| {
                let (n, v) = h.split_once('=').ok_or(UriError::Header)?;
                if n.is_empty() {
                    return Err(UriError::Header);
                }
                Ok((n.to_owned(), v.to_owned()))
            })
            .collect::<Result<_, _>>()?
    };
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params: parse_params(params)?,
        headers,
    })
}

fn parse_params(s: &str) -> Result<Params, UriError> {
    if s.is_empty() {
        return Ok(Params::new());
    }
    Params::parse(s).ok_or(UriError::Param)
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        out.push_str(self.scheme.as_str());
        out.push(':');
        match self.scheme {
            Scheme::Sip | Scheme::Sips => {
                if let Some(user) = &self.user {
                    out.push_str(&percent_encode(user, is_user_char));
                    if let Some(pw) = &self.password {
                        out.push(':');
                        out.push_str(&percent_encode(pw, is_password_char));
                    }
                    out.push('@');
                }
                write_host(&mut out, &self.host, self.port);
            }
            Scheme::Tel => out.push_str(self.user.as_deref().unwrap_or("")),
            Scheme::Other(_) => out.push_str(&self.host),
        }
        f.write_str(&out)?;
        write!(f, "{}", self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{n}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> Uri {
        let uri: Uri = s.parse().unwrap();
        let again: Uri = uri.to_string().parse().unwrap();
        assert_eq!(uri, again, "{s}");
        uri
    }

    #[test]
    fn sip_uri_parts() {
        let u = round_trip("sip:alice:secret@Example.com:5070;transport=tcp;lr?subject=hi&x=y");
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, "Example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.get("transport"), Some("tcp"));
        assert!(u.params.contains("lr"));
        assert_eq!(
            u.headers,
            vec![("subject".into(), "hi".into()), ("x".into(), "y".into())]
        );
    }

    #[test]
    fn escapes_and_ipv6() {
        let u = round_trip("sips:sips%3Auser%40example.com@[2001:db8::10]:5061");
        assert_eq!(u.user.as_deref(), Some("sips:user@example.com"));
        assert_eq!(u.host, "2001:db8::10");
        assert!(u.is_secure());
        let u = round_trip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u@example.net"));
        assert_eq!(u.to_string(), "sip:user;par=u%40example.net@example.com");
    }

    #[test]
    fn tel_and_other() {
        let u = round_trip("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user.as_deref(), Some("+1-201-555-0123"));
        let u = round_trip("urn:service:sos");
        assert_eq!(u.scheme, Scheme::Other("urn".into()));
        assert_eq!(u.host, "service:sos");
    }

    #[test]
    fn invalid() {
        for s in [
            "",
            "nocolon",
            "1sip:a@b",
            "sip:",
            "sip:a@",
            "sip:a@b:x",
            "sip:a@b c",
            "sip:%zz@b",
            "sip:a@[::1",
            "sip:a@b;",
            "sip:a@b?x",
            "tel:",
        ] {
            assert!(s.parse::<Uri>().is_err(), "{s}");
        }
    }
}
