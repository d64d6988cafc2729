//! Sans-IO phone: accounts, calls, SIP dialogs wired to media sessions
#![forbid(unsafe_code)]
