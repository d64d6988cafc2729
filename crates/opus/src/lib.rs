//! libopus through its C API: the encoder and decoder, and the neural features of libopus 1.5
//! that the `opus` crate does not reach: **deep PLC** (a decoder at complexity 5 or more
//! conceals lost SILK frames with a neural vocoder instead of classic pitch repetition) and
//! **DRED** (Deep REDundancy: the encoder appends up to 1 s of low-rate redundant audio
//! features to each packet, in the Opus extension padding that older decoders skip; the
//! receiver rebuilds lost frames from the next packet that arrives).
//!
//! This is the workspace's only FFI. Every call goes through a handle created by libopus and
//! freed on drop; buffers are passed with their lengths; libopus keeps no pointer to them.
//! All state is owned: the handles are `Send` (libopus has no thread affinity) but not `Sync`.

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use opusic_sys as sys;

/// A libopus call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("opus {operation}: {message}")]
pub struct Error {
    pub operation: &'static str,
    pub code: i32,
    pub message: String,
}

impl Error {
    fn new(operation: &'static str, code: c_int) -> Self {
        // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
        let message = unsafe { CStr::from_ptr(sys::opus_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        Self {
            operation,
            code,
            message,
        }
    }
}

fn check(operation: &'static str, code: c_int) -> Result<c_int, Error> {
    if code < 0 {
        Err(Error::new(operation, code))
    } else {
        Ok(code)
    }
}

fn len_i32(operation: &'static str, len: usize) -> Result<i32, Error> {
    i32::try_from(len).map_err(|_| Error::new(operation, sys::OPUS_BAD_ARG))
}

/// The longest DRED libopus encodes: 104 × 10 ms.
pub const MAX_DRED_DURATION_10MS: u32 = 104;

/// A mono or stereo Opus encoder for voice (`OPUS_APPLICATION_VOIP`).
#[derive(Debug)]
pub struct Encoder {
    raw: NonNull<sys::OpusEncoder>,
    channels: usize,
}

// SAFETY: the encoder state is plain memory owned by this handle; libopus has no thread
// affinity. `&mut self` on every call keeps it single-threaded.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn voip(sample_rate: u32, channels: u8) -> Result<Self, Error> {
        let mut error = 0;
        let rate = i32::try_from(sample_rate).map_err(|_| Error::new("encoder create", -1))?;
        // SAFETY: plain values and a valid out-pointer; a null result comes with the error.
        let raw = unsafe {
            sys::opus_encoder_create(
                rate,
                c_int::from(channels),
                sys::OPUS_APPLICATION_VOIP,
                &raw mut error,
            )
        };
        match NonNull::new(raw) {
            Some(raw) if error == sys::OPUS_OK => Ok(Self {
                raw,
                channels: usize::from(channels.max(1)),
            }),
            _ => Err(Error::new("encoder create", error.min(-1))),
        }
    }

    /// Encodes one frame (2.5 to 120 ms of interleaved samples) into `out`; returns the
    /// packet's length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        let frame = len_i32("encode", pcm.len() / self.channels)?;
        let capacity = len_i32("encode", out.len())?;
        // SAFETY: `pcm` holds `frame` samples per channel and `out` `capacity` bytes; libopus
        // reads and writes within those bounds only.
        let written = unsafe {
            sys::opus_encode(
                self.raw.as_ptr(),
                pcm.as_ptr(),
                frame,
                out.as_mut_ptr(),
                capacity,
            )
        };
        check("encode", written).map(|n| n as usize)
    }

    fn set(&mut self, operation: &'static str, request: c_int, value: c_int) -> Result<(), Error> {
        // SAFETY: every SET request used here takes one `opus_int32` (an `int` here).
        check(operation, unsafe {
            sys::opus_encoder_ctl(self.raw.as_ptr(), request, value)
        })
        .map(drop)
    }

    fn get(&mut self, operation: &'static str, request: c_int) -> Result<i32, Error> {
        let mut value: i32 = 0;
        // SAFETY: every GET request used here writes one `opus_int32` through the pointer.
        check(operation, unsafe {
            sys::opus_encoder_ctl(self.raw.as_ptr(), request, &raw mut value)
        })?;
        Ok(value)
    }

    pub fn set_bitrate(&mut self, bits_per_second: i32) -> Result<(), Error> {
        self.set(
            "set bitrate",
            sys::OPUS_SET_BITRATE_REQUEST,
            bits_per_second,
        )
    }

    pub fn bitrate(&mut self) -> Result<i32, Error> {
        self.get("get bitrate", sys::OPUS_GET_BITRATE_REQUEST)
    }

    /// In-band FEC (SILK LBRR: the previous frame again, at a lower rate).
    pub fn set_inband_fec(&mut self, on: bool) -> Result<(), Error> {
        self.set(
            "set inband fec",
            sys::OPUS_SET_INBAND_FEC_REQUEST,
            c_int::from(on),
        )
    }

    /// The loss the encoder protects against (FEC and DRED rates follow it), 0 to 100.
    pub fn set_packet_loss_percent(&mut self, percent: i32) -> Result<(), Error> {
        self.set(
            "set packet loss",
            sys::OPUS_SET_PACKET_LOSS_PERC_REQUEST,
            percent,
        )
    }

    pub fn set_dtx(&mut self, on: bool) -> Result<(), Error> {
        self.set("set dtx", sys::OPUS_SET_DTX_REQUEST, c_int::from(on))
    }

    pub fn set_complexity(&mut self, complexity: i32) -> Result<(), Error> {
        self.set(
            "set complexity",
            sys::OPUS_SET_COMPLEXITY_REQUEST,
            complexity,
        )
    }

    /// How much audio (10 ms units, 0 = none, at most [`MAX_DRED_DURATION_10MS`]) each packet
    /// carries as DRED. Its bits come out of the bitrate, more the higher the packet loss set.
    pub fn set_dred_duration(&mut self, units_10ms: u32) -> Result<(), Error> {
        let units = units_10ms.min(MAX_DRED_DURATION_10MS) as c_int;
        self.set(
            "set dred duration",
            sys::OPUS_SET_DRED_DURATION_REQUEST,
            units,
        )
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { sys::opus_encoder_destroy(self.raw.as_ptr()) }
    }
}

/// An Opus decoder.
#[derive(Debug)]
pub struct Decoder {
    raw: NonNull<sys::OpusDecoder>,
    channels: usize,
}

// SAFETY: as for `Encoder`.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new(sample_rate: u32, channels: u8) -> Result<Self, Error> {
        let mut error = 0;
        let rate = i32::try_from(sample_rate).map_err(|_| Error::new("decoder create", -1))?;
        // SAFETY: plain values and a valid out-pointer.
        let raw = unsafe { sys::opus_decoder_create(rate, c_int::from(channels), &raw mut error) };
        match NonNull::new(raw) {
            Some(raw) if error == sys::OPUS_OK => Ok(Self {
                raw,
                channels: usize::from(channels.max(1)),
            }),
            _ => Err(Error::new("decoder create", error.min(-1))),
        }
    }

    /// Decodes `packet` into `out` (its length: the most samples per channel × channels
    /// wanted); an empty `packet` conceals a lost one. With `fec`, decodes the in-band FEC
    /// of `packet` for the frame before it. Returns the samples per channel written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16], fec: bool) -> Result<usize, Error> {
        let frame = len_i32("decode", out.len() / self.channels)?;
        let len = len_i32("decode", packet.len())?;
        let data = if packet.is_empty() {
            std::ptr::null()
        } else {
            packet.as_ptr()
        };
        // SAFETY: `packet` has `len` bytes (null with 0 asks for concealment) and `out` room
        // for `frame` samples per channel.
        let decoded = unsafe {
            sys::opus_decode(
                self.raw.as_ptr(),
                data,
                len,
                out.as_mut_ptr(),
                frame,
                c_int::from(fec),
            )
        };
        check("decode", decoded).map(|n| n as usize)
    }

    /// 0 to 10; 5 and above turn on deep PLC (when libopus was built with it).
    pub fn set_complexity(&mut self, complexity: i32) -> Result<(), Error> {
        // SAFETY: OPUS_SET_COMPLEXITY takes one `opus_int32`.
        check("set complexity", unsafe {
            sys::opus_decoder_ctl(
                self.raw.as_ptr(),
                sys::OPUS_SET_COMPLEXITY_REQUEST,
                complexity,
            )
        })
        .map(drop)
    }

    /// Rebuilds `out.len() / channels` samples of lost audio from DRED data: the audio that
    /// ended `offset` samples before the start of the packet `dred` was parsed from.
    pub fn decode_dred(
        &mut self,
        dred: &Dred,
        offset: usize,
        out: &mut [i16],
    ) -> Result<usize, Error> {
        let frame = len_i32("dred decode", out.len() / self.channels)?;
        let offset = len_i32("dred decode", offset)?;
        // SAFETY: `dred` is a parsed DRED state owned by the caller; `out` has room for
        // `frame` samples per channel.
        let decoded = unsafe {
            sys::opus_decoder_dred_decode(
                self.raw.as_ptr(),
                dred.raw.as_ptr(),
                offset,
                out.as_mut_ptr(),
                frame,
            )
        };
        check("dred decode", decoded).map(|n| n as usize)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { sys::opus_decoder_destroy(self.raw.as_ptr()) }
    }
}

/// The DRED data of one packet, as parsed by a [`DredDecoder`].
#[derive(Debug)]
pub struct Dred {
    raw: NonNull<sys::OpusDRED>,
    /// Samples before the packet's start that can be rebuilt (0: none).
    available: usize,
}

// SAFETY: plain memory owned by this handle.
unsafe impl Send for Dred {}

impl Dred {
    pub fn new() -> Result<Self, Error> {
        let mut error = 0;
        // SAFETY: a valid out-pointer.
        let raw = unsafe { sys::opus_dred_alloc(&raw mut error) };
        match NonNull::new(raw) {
            Some(raw) if error == sys::OPUS_OK => Ok(Self { raw, available: 0 }),
            _ => Err(Error::new("dred alloc", error.min(-1))),
        }
    }

    /// How far back (samples before the packet's start) the parsed data reaches.
    pub fn available(&self) -> usize {
        self.available
    }
}

impl Drop for Dred {
    fn drop(&mut self) {
        // SAFETY: allocated by opus_dred_alloc, freed once.
        unsafe { sys::opus_dred_free(self.raw.as_ptr()) }
    }
}

/// Runs the DRED feature decoder over packets.
#[derive(Debug)]
pub struct DredDecoder {
    raw: NonNull<sys::OpusDREDDecoder>,
}

// SAFETY: plain memory owned by this handle.
unsafe impl Send for DredDecoder {}

impl DredDecoder {
    pub fn new() -> Result<Self, Error> {
        let mut error = 0;
        // SAFETY: a valid out-pointer.
        let raw = unsafe { sys::opus_dred_decoder_create(&raw mut error) };
        match NonNull::new(raw) {
            Some(raw) if error == sys::OPUS_OK => Ok(Self { raw }),
            _ => Err(Error::new("dred decoder create", error.min(-1))),
        }
    }

    /// Parses the DRED data of `packet` into `dred`, at most `max_samples` back, for a
    /// decoder at `sample_rate`. Returns how far back it reaches (0: the packet has none).
    pub fn parse(
        &mut self,
        dred: &mut Dred,
        packet: &[u8],
        max_samples: usize,
        sample_rate: u32,
    ) -> Result<usize, Error> {
        let len = len_i32("dred parse", packet.len())?;
        let max = len_i32("dred parse", max_samples)?;
        let rate = i32::try_from(sample_rate).map_err(|_| Error::new("dred parse", -1))?;
        let mut end: c_int = 0;
        dred.available = 0;
        if packet.is_empty() {
            return Ok(0);
        }
        // SAFETY: `packet` has `len` bytes; `dred` and the decoder are live handles; `end` is
        // a valid out-pointer. Not deferred: `dred` is ready for decoding on return.
        let reach = unsafe {
            sys::opus_dred_parse(
                self.raw.as_ptr(),
                dred.raw.as_ptr(),
                packet.as_ptr(),
                len,
                max,
                rate,
                &raw mut end,
                0,
            )
        };
        let reach = check("dred parse", reach)? as usize;
        dred.available = reach;
        Ok(reach)
    }
}

impl Drop for DredDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_dred_decoder_create, destroyed once.
        unsafe { sys::opus_dred_decoder_destroy(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const FRAME: usize = 960;

    /// Speech-like: a 140 Hz pulse train through a changing resonance, with syllables.
    fn voice(frame: usize) -> Vec<i16> {
        (0..FRAME)
            .map(|i| {
                let n = (frame * FRAME + i) as f64;
                let t = n / f64::from(RATE);
                let syllable = (t * 4.0 * std::f64::consts::PI).sin().abs();
                let formant = 500.0 + 400.0 * (t * 3.0).sin();
                let pulse = (t * 140.0 * std::f64::consts::TAU).sin().powi(15);
                let tone = (t * formant * std::f64::consts::TAU).sin();
                (9000.0 * syllable * (0.6 * pulse + 0.4 * tone)) as i16
            })
            .collect()
    }

    fn encoded(encoder: &mut Encoder, frames: usize) -> Vec<Vec<u8>> {
        let mut out = vec![0u8; 1500];
        (0..frames)
            .map(|frame| {
                let n = encoder.encode(&voice(frame), &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect()
    }

    fn energy(samples: &[i16]) -> f64 {
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
    }

    #[test]
    fn round_trip_and_concealment() {
        let mut encoder = Encoder::voip(RATE, 1).unwrap();
        encoder.set_bitrate(32_000).unwrap();
        assert_eq!(encoder.bitrate().unwrap(), 32_000);
        let packets = encoded(&mut encoder, 50);
        let mut decoder = Decoder::new(RATE, 1).unwrap();
        let mut out = vec![0i16; 5760];
        for packet in &packets {
            assert_eq!(decoder.decode(packet, &mut out, false).unwrap(), FRAME);
        }
        assert!(energy(&out[..FRAME]) > 1e5);
        // Concealment, deep PLC on.
        decoder.set_complexity(10).unwrap();
        assert_eq!(
            decoder.decode(&[], &mut out[..FRAME], false).unwrap(),
            FRAME
        );
        // Garbage is an error, not a crash.
        assert!(
            decoder
                .decode(&[0xFF, 0xFF, 0xFF], &mut out, false)
                .is_err()
        );
        assert!(Encoder::voip(44_100, 1).is_err());
        assert!(encoder.encode(&[0; 100], &mut [0; 100]).is_err());
    }

    /// A packet with DRED rebuilds the frames lost before it: audio close to the original,
    /// where a packet without DRED reaches back nothing.
    #[test]
    fn dred_rebuilds_frames_lost_before_a_packet() {
        let mut plain = Encoder::voip(RATE, 1).unwrap();
        plain.set_bitrate(32_000).unwrap();
        let mut with = Encoder::voip(RATE, 1).unwrap();
        with.set_bitrate(32_000).unwrap();
        with.set_packet_loss_percent(20).unwrap();
        with.set_dred_duration(10).unwrap();
        let packets = encoded(&mut with, 60);
        let plain_packets = encoded(&mut plain, 60);

        let mut dred_decoder = DredDecoder::new().unwrap();
        let mut dred = Dred::new().unwrap();
        let reach = dred_decoder
            .parse(&mut dred, &packets[50], 10 * 480, RATE)
            .unwrap();
        assert!(reach >= 3 * FRAME, "DRED reaches back {reach} samples");
        assert_eq!(
            dred_decoder
                .parse(&mut dred, &plain_packets[50], 10 * 480, RATE)
                .unwrap(),
            0
        );
        dred_decoder
            .parse(&mut dred, &packets[50], 10 * 480, RATE)
            .unwrap();

        // Frames 47..50 lost: rebuilt from packet 50, oldest first.
        let mut decoder = Decoder::new(RATE, 1).unwrap();
        decoder.set_complexity(10).unwrap();
        let mut out = vec![0i16; FRAME];
        for packet in &packets[..47] {
            decoder.decode(packet, &mut out, false).unwrap();
        }
        let mut rebuilt = Vec::new();
        for back in (1..=3).rev() {
            let n = decoder.decode_dred(&dred, back * FRAME, &mut out).unwrap();
            assert_eq!(n, FRAME);
            rebuilt.extend_from_slice(&out);
        }
        let original: Vec<i16> = (47..50).flat_map(voice).collect();
        assert!(
            energy(&rebuilt) > energy(&original) / 10.0,
            "rebuilt audio has the speech's energy"
        );
    }
}
