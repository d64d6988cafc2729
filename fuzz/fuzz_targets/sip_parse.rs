//! Datagram parser and stream framer: never panic; whatever parses prints back to the same
//! message.
#![no_main]

use homeagent_sip::message::{Message, parse_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(message) => {
            let printed = message.to_bytes();
            assert_eq!(Message::parse(&printed).ok(), Some(message.clone()));
            assert_eq!(
                parse_stream(&printed).ok().flatten(),
                Some((message, printed.len()))
            );
        }
        Err(error) => {
            let _ = error.bad_request_response();
        }
    }
    if let Ok(Some((_, used))) = parse_stream(data) {
        assert!(used <= data.len());
    }
});
