//! A platform test server implementing docs/platform-api.yaml (work in progress).
