//! SDP parser and offer/answer: never panic; whatever parses prints back to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    homeagent_media::sdp::fuzz_one(data);
});
