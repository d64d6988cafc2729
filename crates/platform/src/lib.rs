//! The contact-center platform connector: agent session and state, and call wrap-ups delivered
//! exactly once through a crash-safe outbox. The HTTP+JSON contract is `docs/platform-api.yaml`.
//!
//! # Wrap-ups: at-least-once delivery, exactly-once storage
//!
//! 1. The agent saves a wrap-up: [`Wrapup::new`] gives it a random 128-bit key, and
//!    [`Outbox::enqueue`] makes it durable (SQLite, WAL, `synchronous=FULL`) before returning.
//! 2. A delivery task ([`spawn_delivery`]) posts every pending wrap-up with its key as
//!    `Idempotency-Key`, acknowledges (removes) it on 201 or 200, moves it to a `rejected` table
//!    on a refusal for good (4xx), and retries with exponential backoff on anything temporary
//!    (5xx, connection error, timeout, 401/403, 408, 429).
//! 3. A crash anywhere only means a wrap-up may be posted again: the platform answers 200
//!    (duplicate) for a key it already stored, and stores nothing twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), homeagent_platform::PlatformError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use homeagent_platform::{AgentState, HttpPlatform, Outbox, Wrapup, spawn_delivery};
//!
//! let outbox = Arc::new(Outbox::open("/var/lib/homeagent/outbox.sqlite3".as_ref())?);
//! let platform = Arc::new(HttpPlatform::new(
//!     "https://acd.example.com/homeagent/v1",
//!     "agent01",
//!     Some("secret-token".to_owned()),
//!     Duration::from_secs(10),
//! )?);
//! platform.login().await?;
//! platform.set_state(&AgentState::Ready).await?;
//! let delivery = spawn_delivery(outbox.clone(), platform.clone());
//!
//! // At the end of a call:
//! let wrapup = Wrapup::new("a84b4c76e66710@pc33", "agent01", "sale", "Upgraded plan", 1_764_000_000_000);
//! let queued = outbox.clone();
//! tokio::task::spawn_blocking(move || queued.enqueue(&wrapup)).await.expect("enqueue task")?;
//! delivery.kick();
//! # Ok(()) }
//! ```
//!
//! # Agent state
//!
//! [`HttpPlatform::login`], [`HttpPlatform::set_state`] and [`HttpPlatform::logout`] are plain
//! requests (no queue: a state is only worth sending now). [`HttpPlatform::state_events`] follows
//! the states the platform sets itself (optional in the contract).
//!
//! # Blocking
//!
//! [`Outbox`] methods are synchronous: each is one short SQLite statement or transaction,
//! `enqueue`/`acknowledge` wait for an `fsync` (about a millisecond on an SSD). From async code
//! call them in `tokio::task::spawn_blocking`; [`deliver_pending`] and [`spawn_delivery`] do so.
#![forbid(unsafe_code)]

mod delivery;
mod error;
mod http;
mod model;
mod outbox;

pub use delivery::{
    Backoff, Delivered, DeliveryHandle, deliver_pending, spawn_delivery, spawn_delivery_with,
};
pub use error::PlatformError;
pub use http::{HttpPlatform, StateEvents, Submitted};
pub use model::{AgentState, Wrapup};
pub use outbox::{Outbox, RejectedWrapup};
