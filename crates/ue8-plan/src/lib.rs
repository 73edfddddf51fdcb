//! ue8-plan
