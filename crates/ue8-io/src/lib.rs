//! ue8-io: reading and writing checkpoints. safetensors (mmap read, streaming sharded write + index),
//! GGUF read, config.json and quantization_config, checkpoint layout detection, sha256 manifests.
//! Every file is untrusted input: sizes are checked, errors are typed and name the file and tensor.

pub mod gguf;
