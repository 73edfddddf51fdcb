//! ue8-engine
