//! Every message of a real JsSIP ↔ Kamailio call (captured on this project's bench, file
//! in `tests/data`) parses, keeps its key values, and round-trips through the printer.

use homeagent_sip::Message;
use homeagent_sip::message::parse_stream;

const TRACE: &str = include_str!("data/jssip-sip-trace.txt");

/// Splits the trace into wire messages (LF in the file, CRLF on the wire).
fn messages() -> Vec<Vec<u8>> {
    TRACE
        .split("\n===== ")
        .skip(1)
        .map(|block| {
            let (_, message) = block.split_once('\n').unwrap();
            let message = message.trim_end_matches('\n');
            let mut wire = message.replace('\n', "\r\n");
            // Trimming removed the empty line (no body) or the body's last CRLF.
            if wire.contains("\r\n\r\n") {
                wire.push_str("\r\n");
            } else {
                wire.push_str("\r\n\r\n");
            }
            wire.into_bytes()
        })
        .collect()
}

#[test]
fn every_message_parses_and_round_trips() {
    let all = messages();
    assert_eq!(all.len(), 22);
    for bytes in &all {
        let text = String::from_utf8_lossy(bytes);
        let message = Message::parse(bytes).unwrap_or_else(|e| panic!("{e}: {text}"));
        let printed = message.to_bytes();
        assert_eq!(Message::parse(&printed).unwrap(), message);
        let (framed, used) = parse_stream(&printed).unwrap().unwrap();
        assert_eq!((framed, used), (message.clone(), printed.len()));
        // Bodies are complete where Content-Length said so.
        if let Some(len) = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            assert_eq!(message.body().len(), len, "{text}");
        }
    }
}

#[test]
fn key_values_of_the_trace() {
    let all = messages();
    let Message::Response(reg_ok) = Message::parse(&all[1]).unwrap() else {
        panic!("second message is the 200 to REGISTER");
    };
    let via = reg_ok.headers.via().unwrap();
    assert_eq!(via.transport, "WS");
    assert_eq!(via.rport(), Some(Some(35760)));
    assert_eq!(via.received(), Some("127.0.0.1"));
    let contact = &reg_ok.headers.contacts()[0];
    assert_eq!(contact.params.get("expires"), Some("300"));
    assert_eq!(
        contact.params.get("+sip.instance"),
        Some("\"<urn:uuid:0e214e62-640c-402a-afe3-1e6028cea9b2>\"")
    );
    let Message::Request(invite) = Message::parse(&all[2]).unwrap() else {
        panic!("third message is the INVITE");
    };
    assert_eq!(invite.headers.cseq().unwrap().seq, 9584);
    assert!(invite.body.starts_with(b"v=0\r\n"));
    let Message::Response(trying) = Message::parse(&all[3]).unwrap() else {
        panic!("fourth message is the 100");
    };
    assert_eq!(trying.reason, "trying -- your call is important to us");
}
