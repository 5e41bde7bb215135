//! The built-in test publishing point.
