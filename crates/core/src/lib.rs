//! Sans-IO phone: accounts, calls, SIP dialogs wired to media sessions.
//!
//! # Contract
//! One owner drives one [`Phone`], str0m style:
//! - feed it [`Input`]s (`Datagram`, `Timeout`, `Command`, `MediaPortReady`), each carrying `now`;
//! - then call [`Phone::poll_output`] until it returns [`Output::Timeout`] (the next deadline):
//!   in between it yields [`Output::Transmit`] (SIP bytes to send), [`Output::Media`] (start,
//!   update or stop a call's RTP session: the driver owns sockets and audio) and
//!   [`Output::Event`]s for the front end.
//!
//! The phone never reads a clock, opens a socket or spawns a thread. Randomness (tags, branches,
//! Call-IDs, cnonces) comes from a seed given at construction.
#![forbid(unsafe_code)]

mod agent;
mod call;
mod config;
mod event;
mod phone;
mod pii;
mod presence;
mod register;
mod rng;

pub use agent::{AgentState, WrapupRules};
pub use config::{Account, AcdConfig, AnswerMode, Credentials, IceConfig, PhoneConfig, SrtpPolicy};
pub use event::{CallId, EndReason, MediaCommand, MediaParams, PhoneEvent, RegistrationState};
pub use phone::{Command, Input, Output, Phone};
pub use pii::Pii;

pub use homeagent_media::{CodecKind, Direction};
pub use homeagent_sip as sip;
