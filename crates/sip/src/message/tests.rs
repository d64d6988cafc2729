//! Torture tests in the spirit of RFC 4475 (messages written for this crate).

use super::*;

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

fn request(bytes: &[u8]) -> Request {
    match Message::parse(bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn reject(bytes: &[u8]) -> ParseError {
    match Message::parse(bytes) {
        Err(e) => e,
        Ok(m) => panic!("expected rejection, parsed {m:?}"),
    }
}

const BASIC: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Type: application/sdp
Content-Length: 4

v=0
";

#[test]
fn basic_invite() {
    let r = request(&crlf(BASIC));
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.user.as_deref(), Some("bob"));
    assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(r.headers.to().unwrap().display_name.as_deref(), Some("Bob"));
    assert_eq!(r.headers.cseq().unwrap().seq, 314159);
    assert_eq!(r.headers.max_forwards(), Some(70));
    assert_eq!(r.body, b"v=0\r");
    assert_eq!(r.headers.get("Content-Length"), None);
}

#[test]
fn tortuous_invite() {
    // Folding, odd spacing, compact names, mixed case, escapes, quoted strings with
    // escapes, multiple values, unknown headers kept in order, unknown URI scheme in a
    // header, IPv6.
    let msg = "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 7
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;rport;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP/2.0/TCP spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP/2.0/UDP [2001:db8::10]:5070;received=192.0.2.1  ,SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKx
m: \"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33, <mailto:x@y.example>
X-Weird: a\tb

v=0
o=";
    let r = request(&crlf(msg));
    assert_eq!(r.uri.params.get("unknownparam"), Some(""));
    let to = r.headers.to().unwrap();
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = r.headers.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(r.headers.max_forwards(), Some(68));
    assert_eq!(
        r.headers.cseq().unwrap(),
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    let vias = r.headers.vias();
    assert_eq!(vias.len(), 4);
    assert_eq!(vias[0].host, "192.0.2.2");
    assert_eq!(vias[0].rport(), Some(None));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host, "2001:db8::10");
    assert_eq!(vias[2].port, Some(5070));
    assert_eq!(vias[2].received(), Some("192.0.2.1"));
    assert_eq!(r.headers.get("Subject"), Some(""));
    assert_eq!(
        r.headers.get("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let contacts = r.headers.contacts();
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        contacts[0].display_name.as_deref(),
        Some("Quoted string \"\"")
    );
    assert_eq!(contacts[0].params.get("newparam"), Some("newvalue"));
    assert_eq!(contacts[0].params.get("q"), Some("0.33"));
    assert_eq!(contacts[1].uri.scheme, Scheme::Other("mailto".into()));
    assert!(r.headers.routes()[0].uri.params.contains("lr"));
    assert_eq!(r.body, b"v=0\r\no=");
    // Unknown headers keep their relative order.
    let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("NewFangledHeader") < pos("UnknownHeaderWithUnusualValue"));
    assert!(pos("UnknownHeaderWithUnusualValue") < pos("X-Weird"));
}

#[test]
fn escapes_in_request_uri_and_unknown_method() {
    let msg = "NEWMETHOD sip:sips%3Auser%40example.com@example.net;lr SIP/2.0
To: sip:%61lice@example.com
From: <sip:bob@example.com>;tag=x
Call-ID: esc
CSeq: 1 NEWMETHOD
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
l: 0

";
    let r = request(&crlf(msg));
    assert_eq!(r.method, Method::Other("NEWMETHOD".into()));
    assert_eq!(r.uri.user.as_deref(), Some("sips:user@example.com"));
    assert_eq!(r.headers.to().unwrap().uri.user.as_deref(), Some("alice"));
}

#[test]
fn unknown_scheme_and_tel_request_uri() {
    for uri in [
        "urn:service:sos",
        "tel:+1-555-0100;phone-context=x",
        "sip:[::1]:5060",
    ] {
        let msg = format!(
            "OPTIONS {uri} SIP/2.0\nVia: SIP/2.0/TCP [::1];branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 2 OPTIONS\n\n"
        );
        let r = request(&crlf(&msg));
        assert_eq!(r.uri.to_string(), uri);
    }
}

#[test]
fn response_and_bare_lf() {
    let msg = "SIP/2.0 180 Ringing Now\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: x\nCSeq: 2 INVITE\n\n";
    match Message::parse(msg.as_bytes()).unwrap() {
        Message::Response(r) => {
            assert_eq!(r.status, 180);
            assert_eq!(r.reason, "Ringing Now");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn udp_body_without_content_length_and_extra_bytes() {
    let head = "MESSAGE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 2 MESSAGE\n";
    let mut no_len = crlf(head);
    no_len.extend_from_slice(b"\r\nhello\xff");
    assert_eq!(request(&no_len).body, b"hello\xff");
    let mut extra = crlf(&format!("{head}Content-Length: 2\n"));
    extra.extend_from_slice(b"\r\nhello");
    assert_eq!(request(&extra).body, b"he");
}

fn with_header(extra: &str) -> Vec<u8> {
    crlf(&format!(
        "INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 2 INVITE\n{extra}\nbody"
    ))
}

#[test]
fn content_length_errors() {
    use ParseErrorKind as K;
    let cases = [
        ("Content-Length: -4\n", K::InvalidContentLength),
        ("Content-Length: 4x\n", K::InvalidContentLength),
        ("Content-Length: \n", K::InvalidContentLength),
        ("Content-Length: 99999999999999999999999\n", K::BodyTooLarge),
        ("Content-Length: 2000000\n", K::BodyTooLarge),
        ("Content-Length: 9\n", K::BodyTruncated),
        ("Content-Length: 4\nl: 3\n", K::InvalidContentLength),
    ];
    for (extra, kind) in cases {
        let e = reject(&with_header(extra));
        assert_eq!(e.kind(), &kind, "{extra}");
        let resp = e.bad_request_response().expect("headers were readable");
        assert_eq!(resp.status, 400);
        assert_eq!(resp.reason, kind.to_string());
    }
    // Same value twice is fine.
    assert_eq!(
        request(&with_header("Content-Length: 4\nl: 4\n")).body,
        b"body"
    );
}

#[test]
fn missing_or_bad_mandatory_headers() {
    use ParseErrorKind as K;
    let full = [
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1",
        "From: <sip:a@b>;tag=1",
        "To: <sip:c@d>",
        "Call-ID: x",
        "CSeq: 2 INVITE",
    ];
    let names = ["Via", "From", "To", "Call-ID", "CSeq"];
    for (i, name) in names.iter().enumerate() {
        let mut lines: Vec<&str> = full.to_vec();
        lines.remove(i);
        let msg = format!("INVITE sip:a@b SIP/2.0\n{}\n\n", lines.join("\n"));
        let e = reject(&crlf(&msg));
        assert_eq!(e.kind(), &K::MissingHeader(name));
        // Without one of the five the layer cannot answer.
        assert!(e.bad_request_response().is_none());

        let mut lines: Vec<String> = full.iter().map(|s| s.to_string()).collect();
        lines[i] = format!("{name}: <<garbage and space");
        let msg = format!("INVITE sip:a@b SIP/2.0\n{}\n\n", lines.join("\n"));
        assert_eq!(reject(&crlf(&msg)).kind(), &K::InvalidHeader(name));
    }
}

#[test]
fn semantic_errors_get_a_400_with_reason() {
    use ParseErrorKind as K;
    let e = reject(&crlf(
        "INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: cid\nCSeq: 2 BYE\n\n",
    ));
    assert_eq!(e.kind(), &K::CSeqMismatch);
    let resp = e.bad_request_response().unwrap();
    assert_eq!(resp.headers.call_id(), Some("cid"));
    assert!(resp.headers.to().unwrap().tag().is_some());
    assert_eq!(resp.headers.via().unwrap().branch(), Some("z9hG4bK1"));
    // Deterministic tag: a retransmission gets the same answer.
    assert_eq!(resp, e.bad_request_response().unwrap());

    let e = reject(&with_header("Max-Forwards: many\n"));
    assert_eq!(e.kind(), &K::InvalidHeader("Max-Forwards"));

    let bad_version = with_header("");
    let bad_version = String::from_utf8(bad_version)
        .unwrap()
        .replacen("SIP/2.0\r", "SIP/7.0\r", 1);
    let e = reject(bad_version.as_bytes());
    assert_eq!(e.kind(), &K::Version);
    assert_eq!(e.bad_request_response().unwrap().status, 505);

    let bad_uri = String::from_utf8(with_header(""))
        .unwrap()
        .replacen("sip:a@b", "sip:a@b:x", 1);
    let e = reject(bad_uri.as_bytes());
    assert_eq!(e.kind(), &K::RequestUri);
    assert!(e.bad_request_response().is_some());

    let mut not_utf8 = with_header("Subject: caf\u{e9}\n");
    let pos = not_utf8
        .windows(2)
        .position(|w| w == "é".as_bytes())
        .unwrap();
    not_utf8.splice(pos..pos + 2, [0xe9]);
    let e = reject(&not_utf8);
    assert_eq!(e.kind(), &K::NotUtf8);
    assert!(e.bad_request_response().is_some());

    let e = reject(&with_header("no colon here\n"));
    assert_eq!(e.kind(), &K::HeaderLine);
    let e = reject(&with_header("X-Bare: a\rb\n"));
    assert_eq!(e.kind(), &K::HeaderLine);
}

#[test]
fn printer_neutralises_line_breaks_in_values() {
    let mut r = request(&with_header("Content-Length: 4\n"));
    r.headers.push("Subject", "hi\r\nInjected: yes");
    let back = request(&r.to_bytes());
    assert_eq!(back.headers.get("Subject"), Some("hi  Injected: yes"));
    assert_eq!(back.headers.get("Injected"), None);
}

#[test]
fn garbage_and_truncated() {
    use ParseErrorKind as K;
    let cases: [(&[u8], ParseErrorKind); 10] = [
        (b"", K::Empty),
        (b"\r\n\r\n", K::Empty),
        (b"INVITE", K::NoHeaderEnd),
        (b"INVITE sip:a@b\r\n\r\n", K::StartLine),
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", K::StartLine),
        (b"SIP/2.0 99 Low\r\n\r\n", K::StartLine),
        (b"SIP/2.0 1000 High\r\n\r\n", K::StartLine),
        (b"SIP/3.0 200 OK\r\n\r\n", K::Version),
        (b"\x00\x01\x02\xff\r\n\r\n", K::StartLine),
        (b"IN\"VITE sip:a@b SIP/2.0\r\n\r\n", K::StartLine),
    ];
    for (bytes, kind) in cases {
        let e = reject(bytes);
        assert_eq!(e.kind(), &kind, "{:?}", String::from_utf8_lossy(bytes));
        assert!(e.bad_request_response().is_none());
    }
    // A response with broken headers is rejected but never answered.
    let e = reject(b"SIP/2.0 200 OK\r\nVia: nope\r\n\r\n");
    assert!(!e.is_request());
    assert!(e.bad_request_response().is_none());
    // Continuation line before any header.
    let e = reject(b"OPTIONS sip:a@b SIP/2.0\r\n folded\r\n\r\n");
    assert_eq!(e.kind(), &K::HeaderLine);
}

#[test]
fn stream_framing() {
    let one = with_header("Content-Length: 4\n");
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(&one);
    stream.extend_from_slice(&one);
    // Every strict prefix of the first message needs more bytes.
    let first_len = 4 + one.len();
    for cut in 0..first_len {
        assert!(parse_stream(&stream[..cut]).unwrap().is_none(), "cut {cut}");
    }
    let (m, used) = parse_stream(&stream).unwrap().unwrap();
    assert_eq!(used, first_len);
    assert_eq!(m.body(), b"body");
    let (m2, used2) = parse_stream(&stream[used..]).unwrap().unwrap();
    assert_eq!(used2, one.len());
    assert_eq!(m, m2);

    let e = parse_stream(&with_header("")).unwrap_err();
    assert_eq!(e.kind(), &ParseErrorKind::MissingContentLength);
    let huge = vec![b'a'; MAX_HEAD_LEN + 1];
    assert_eq!(
        parse_stream(&huge).unwrap_err().kind(),
        &ParseErrorKind::HeadTooLarge
    );
}

#[test]
fn print_parse_round_trip() {
    let msgs = [
        crlf(BASIC),
        with_header("Content-Length: 4\nX-A: 1\nX-B: 2\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\n"),
    ];
    for bytes in msgs {
        let m = Message::parse(&bytes).unwrap();
        let printed = m.to_bytes();
        let again = Message::parse(&printed).unwrap();
        assert_eq!(m, again);
        assert_eq!(printed, again.to_bytes());
        assert_eq!(
            parse_stream(&printed).unwrap().unwrap(),
            (again, printed.len())
        );
    }
    // Typed values survive print -> parse.
    let mut r = Request::new(
        Method::Invite,
        "sip:b%20b@[::1]:5062;transport=tcp".parse().unwrap(),
    );
    r.headers.push(
        "Via",
        Via::new("udp", "::1", Some(5060), &generate_branch(7)).to_string(),
    );
    let mut from = NameAddr::new(Uri::sip(Some("al ice"), "a.example", None));
    from.display_name = Some("A \"quoted\" \\ name".into());
    from.set_tag(&generate_tag(1));
    r.headers.push("From", from.to_string());
    r.headers.push("To", "<sip:b@c>");
    r.headers.push("Call-ID", generate_call_id([1, 2]));
    r.headers.push("CSeq", "1 INVITE");
    r.headers.push("Content-Length", "999");
    r.body = b"\x00binary\xff".to_vec();
    let back = request(&r.to_bytes());
    assert_eq!(back.headers.from(), Some(from));
    assert_eq!(back.uri, r.uri);
    assert_eq!(back.body, r.body);
    assert_eq!(
        back.headers.via().unwrap().branch(),
        Some("z9hG4bK0000000000000007")
    );
}

#[test]
fn response_from_request_copies_headers() {
    let mut bytes = with_header("Record-Route: <sip:p1;lr>\nContact: <sip:a@1.2.3.4>\n");
    bytes.truncate(bytes.len() - 4);
    let req = request(&bytes);
    let ok = Response::from_request(&req, 200, "", Some("t1"));
    assert_eq!(ok.reason, "OK");
    assert_eq!(ok.headers.to().unwrap().tag(), Some("t1"));
    assert_eq!(ok.headers.record_routes().len(), 1);
    assert!(ok.headers.contacts().is_empty());
    let busy = Response::from_request(&req, 486, "Busy", None);
    assert!(busy.headers.to().unwrap().tag().is_none());
    assert!(busy.headers.record_routes().is_empty());
    assert_eq!(busy.headers.cseq(), req.headers.cseq());
    assert!(Message::parse(&busy.to_bytes()).is_ok());
}

/// A small xorshift generator: deterministic, no dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_bytes_and_mutations_never_panic() {
    let seed_msg = crlf(BASIC);
    let mut state = 0x1234_5678_9abc_def1u64;
    let alphabet = b"\r\n :;,<>\"\\%@[]=/SIPVIaviz9 0123456789";
    for i in 0..20_000 {
        let mut bytes = if i % 2 == 0 {
            seed_msg.clone()
        } else {
            let len = (xorshift(&mut state) % 300) as usize;
            (0..len).map(|_| xorshift(&mut state) as u8).collect()
        };
        let edits = xorshift(&mut state) % 8;
        for _ in 0..edits {
            if bytes.is_empty() {
                break;
            }
            let at = (xorshift(&mut state) as usize) % bytes.len();
            let r = xorshift(&mut state);
            match r % 3 {
                0 => bytes[at] = alphabet[(r as usize / 3) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(r as usize / 3) % alphabet.len()]),
            }
        }
        if let Ok(m) = Message::parse(&bytes) {
            // Anything accepted prints into something that parses back the same.
            assert_eq!(Message::parse(&m.to_bytes()).ok(), Some(m));
        } else if let Err(e) = Message::parse(&bytes) {
            let _ = e.bad_request_response();
        }
        let _ = parse_stream(&bytes);
    }
}

#[test]
fn more_valid_oddities() {
    let msg = "REGISTER sips:[2001:db8::1]:5061;transport=tls?Route=%3Csip:example.com%3E SIP/2.0
Via: SIP/2.0/TLS [2001:db8::9];branch=z9hG4bKv6;received=2001:db8::99
f: \u{e9}l\u{e8}ve <sips:eleve@example.com>;tag=e1
t: sips:eleve@example.com
i: \u{263a}@[2001:db8::9]
CSeq: 0000000004 REGISTER
k: 100rel, timer
Contact: *
Expires: 0
Content-Length: 0004
X-Utf8: \u{65e5}\u{672c}

1234";
    let r = request(&crlf(msg));
    assert_eq!(r.uri.scheme, Scheme::Sips);
    assert_eq!(r.uri.host, "2001:db8::1");
    assert_eq!(
        r.uri.headers,
        vec![("Route".into(), "%3Csip:example.com%3E".into())]
    );
    let via = r.headers.via().unwrap();
    assert_eq!(via.transport, "TLS");
    assert_eq!(via.received(), Some("2001:db8::99"));
    assert_eq!(
        r.headers.from().unwrap().display_name.as_deref(),
        Some("\u{e9}l\u{e8}ve")
    );
    assert_eq!(r.headers.call_id(), Some("\u{263a}@[2001:db8::9]"));
    assert_eq!(r.headers.cseq().unwrap().seq, 4);
    assert_eq!(r.headers.get("Supported"), Some("100rel, timer"));
    assert_eq!(r.headers.get("Contact"), Some("*"));
    assert!(r.headers.contacts().is_empty());
    assert_eq!(r.headers.expires(), Some(0));
    assert_eq!(r.body, b"1234");

    // Responses with an empty or missing reason phrase.
    for start in [
        "SIP/2.0 200 ",
        "SIP/2.0 200",
        "sip/2.0 699 \u{c9}chec total",
    ] {
        let msg = format!(
            "{start}\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 1 BYE\n\n"
        );
        assert!(
            matches!(Message::parse(&crlf(&msg)), Ok(Message::Response(_))),
            "{start}"
        );
    }
}

#[test]
fn more_invalid_oddities() {
    use ParseErrorKind as K;
    let cases = [
        (
            "Max-Forwards: 99999999999\n",
            K::InvalidHeader("Max-Forwards"),
        ),
        ("Bad Name: x\n", K::HeaderLine),
        (": empty name\n", K::HeaderLine),
    ];
    for (extra, kind) in cases {
        assert_eq!(reject(&with_header(extra)).kind(), &kind, "{extra}");
    }
    let tab = String::from_utf8(with_header(""))
        .unwrap()
        .replacen("INVITE sip", "INVITE\tsip", 1);
    assert_eq!(reject(tab.as_bytes()).kind(), &K::StartLine);
    // From with an unterminated quoted display name.
    let bad_from = String::from_utf8(with_header("")).unwrap().replacen(
        "From: <sip:a@b>;tag=1",
        "From: \"Alice <sip:a@b>;tag=1",
        1,
    );
    assert_eq!(
        reject(bad_from.as_bytes()).kind(),
        &K::InvalidHeader("From")
    );
    // Via with a non-SIP protocol.
    let bad_via =
        String::from_utf8(with_header(""))
            .unwrap()
            .replacen("SIP/2.0/UDP a", "HTTP/1.1/UDP a", 1);
    assert_eq!(reject(bad_via.as_bytes()).kind(), &K::InvalidHeader("Via"));
}
