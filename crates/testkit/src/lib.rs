//! Dev-only: seeded network emulator, in-memory harness, real peer helpers
#![forbid(unsafe_code)]
