//! Opus packets from the network into libopus: decode, in-band FEC, DRED parse and rebuild.
//! Never crash, never read or write out of bounds.
#![no_main]

use homeagent_opus::{Decoder, Dred, DredDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Ok(mut decoder), Ok(mut dred_decoder), Ok(mut dred)) =
        (Decoder::new(48_000, 1), DredDecoder::new(), Dred::new())
    else {
        return;
    };
    let _ = decoder.set_complexity(10);
    let mut out = vec![0i16; 5760];
    let _ = decoder.decode(data, &mut out, false);
    let _ = decoder.decode(data, &mut out[..960], true);
    let _ = decoder.decode(&[], &mut out[..960], false);
    if let Ok(reach) = dred_decoder.parse(&mut dred, data, 4800, 48_000) {
        for offset in [960, 1920, reach.max(960)] {
            let _ = decoder.decode_dred(&dred, offset, &mut out[..960]);
        }
    }
});
