//! Audio I/O: devices (cpal), WAV files, tones, null, resampling.
//! The only crate allowed real-time threads and (reviewed) unsafe.
