//! The pure metadata state machine of the Baton controller.
