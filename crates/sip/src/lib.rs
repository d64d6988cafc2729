//! Sans-IO SIP (RFC 3261): messages, transactions, dialogs, digest auth
#![forbid(unsafe_code)]
