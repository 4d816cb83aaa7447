//! Extended.
