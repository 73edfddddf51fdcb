//! tokenizer.json and tokenizer_config.json built from GGUF tokenizer metadata.
