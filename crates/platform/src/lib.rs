//! Contact-center platform connector (work in progress).
