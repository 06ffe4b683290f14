//! (filled in by the nn issue)
