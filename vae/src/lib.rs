//! (filled in by the vae issue)
