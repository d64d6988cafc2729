//! Sans-IO SIP (RFC 3261): messages, transactions, dialogs, digest auth
#![forbid(unsafe_code)]

pub mod auth;
pub mod dialog;
pub mod message;
pub mod registration;
pub mod transaction;

pub use message::{Message, Method, Request, Response, Uri};
