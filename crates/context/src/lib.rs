//! Customer context lookup (work in progress).
