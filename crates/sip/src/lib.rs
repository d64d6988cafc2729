//! Sans-IO SIP (RFC 3261): messages, transactions, dialogs, digest auth, registration.
//!
//! # Contract
//!
//! Nothing here reads a clock, opens a socket, spawns a thread or draws random numbers.
//! Time is an [`std::time::Instant`] argument (`now`); randomness (branches, tags,
//! Call-IDs, cnonces) comes from the caller as `u64` values.
//!
//! - [`message`]: the model, [`Message::parse`] for datagrams, [`message::parse_stream`]
//!   for stream framing, [`Message::to_bytes`] for printing. Bodies are opaque bytes.
//! - [`transaction`]: one [`transaction::TransactionLayer`] per endpoint, owned by one
//!   driver. Inputs: `handle_datagram`/`handle_message` (what arrived, from which
//!   [`transaction::Peer`]), `send_request`/`send_response`/`send_stateless` (what the TU
//!   sends), `handle_timeout(now)`. Outputs, drained after every input:
//!   `poll_transmit` (bytes to send and to whom), `poll_event` (what the TU must know),
//!   `poll_timeout` (when to call `handle_timeout` next).
//! - [`dialog`], [`registration`], [`auth`]: plain state and builders used by the TU; they
//!   never send anything themselves — their requests go through the transaction layer.
//!
//! ```
//! use std::time::Instant;
//! use homeagent_sip::message::{generate_branch, Message};
//! use homeagent_sip::transaction::{Peer, TimerConfig, TransactionEvent, TransactionLayer, Transport};
//!
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now(); // the driver's clock, passed in
//! let mut layer = TransactionLayer::new(TimerConfig::default());
//! let from = Peer { addr: "192.0.2.1:5060".parse().unwrap(), transport: Transport::Udp };
//! let datagram = format!(
//!     "OPTIONS sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch={}\r\n\
//!      From: <sip:alice@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\nCall-ID: c\r\n\
//!      CSeq: 1 OPTIONS\r\n\r\n",
//!     generate_branch(42)
//! );
//! layer.handle_datagram(now, from, datagram.as_bytes());
//! while let Some(event) = layer.poll_event() {
//!     if let TransactionEvent::Request { id, request, .. } = event {
//!         let ok = homeagent_sip::Response::from_request(&request, 200, "", Some("t"));
//!         layer.send_response(now, id, ok).unwrap();
//!     }
//! }
//! let transmit = layer.poll_transmit().unwrap();
//! assert_eq!(transmit.to, from);
//! assert!(matches!(transmit.message, Message::Response(ref r) if r.status == 200));
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod dialog;
pub mod message;
pub mod registration;
pub mod transaction;

pub use message::{Message, Method, Request, Response, Uri};
