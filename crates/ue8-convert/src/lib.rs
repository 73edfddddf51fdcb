//! ue8-convert
