//! GGUF v2/v3 reader (untrusted input: every size is checked).
