//! Workspace root: integration tests live in tests/, benches in benches/.
