//! Baton controller.
