//! SRTP/SRTCP receive path: arbitrary datagrams through authentication and decryption, for
//! every suite we speak (an attacker's packets never authenticate, but must never panic);
//! and `a=crypto` lines parsed from the same bytes.
#![no_main]

use homeagent_media::sdp::{CryptoLine, SrtpKeys, SrtpSuite};
use homeagent_media::srtp::{SrtpTransform, is_rtcp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CryptoLine::parse(text);
    }
    for suite in SrtpSuite::ACCEPTED {
        let key = vec![7u8; suite.key_material_len()];
        let keys = SrtpKeys {
            suite,
            local_key: key.clone(),
            remote_key: key,
        };
        let Ok(mut srtp) = SrtpTransform::new(&keys) else { return };
        if is_rtcp(data) {
            let _ = srtp.unprotect_rtcp(data);
        } else {
            let _ = srtp.unprotect_rtp(data);
        }
        // What we would send, protected and read back.
        if let Ok(secured) = srtp.protect_rtp(data) {
            let _ = srtp.unprotect_rtp(&secured);
        }
    }
});
