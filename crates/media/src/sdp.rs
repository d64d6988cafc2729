//! SDP (RFC 4566) model, parser, printer and offer/answer (RFC 3264).
