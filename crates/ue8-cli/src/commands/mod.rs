//! One module per subcommand: each defines its clap `Args` and a `run` function.
pub mod bench;
pub mod chips;
pub mod convert_progress;
pub mod convert_report;
pub mod demo;
pub mod dequantize;
pub mod diff;
pub mod import_gguf;
pub mod inspect;
pub mod perplexity;
pub mod plan;
pub mod quantize;
pub mod requantize;
pub mod run;
pub mod v4;
pub mod verify; // v4: DeepSeek-V4 dispatch (issue 11)
