//! GGUF tensor names to Hugging Face names, and GGML's Q/K row permutation.
