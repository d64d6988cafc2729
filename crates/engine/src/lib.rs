//! Tokio driver: sockets, timers, audio threads, config
#![forbid(unsafe_code)]
