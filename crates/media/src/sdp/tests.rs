//! Tests for the SDP model, parser, printer and offer/answer.

mod fixtures;
mod ice;
mod negotiation;
mod parsing;
mod real_peers;
