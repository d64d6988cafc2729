//! The app-facing API: commands, events, DTOs, error codes
#![forbid(unsafe_code)]
