//! One module per subcommand: each defines its clap `Args` and a `run` function.
pub mod inspect;
pub mod quantize;
pub mod requantize;
pub mod dequantize;
pub mod verify;
pub mod diff;
pub mod import_gguf;
pub mod run;
pub mod perplexity;
pub mod bench;
pub mod demo;
pub mod plan;
pub mod chips;
pub mod convert_progress;
pub mod convert_report;
pub mod v4; // v4: DeepSeek-V4 dispatch (issue 11)
