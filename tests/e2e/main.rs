//! End-to-end tests: the real `homeagent` binary against real peers on loopback
//! (baresip, Kamailio, sipp, linphonec). One test binary so CI builds and runs it once.
//!
//! Each test skips with a notice when a peer is not installed, unless
//! `HOMEAGENT_REQUIRE_PEERS=1` (CI), where a missing peer fails the test.

mod acd;
mod baresip;
mod browser;
mod common;
mod controls;
mod demo;
mod desktop;
mod devices;
mod kamailio;
mod linphone;
mod privacy;
mod quality;
mod sipp;
mod srtp;
mod tls;
mod turn;
mod ws;
