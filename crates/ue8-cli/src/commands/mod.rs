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

/// `--activations`, shared by `run`, `perplexity` and `bench`.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ActivationsArg {
    /// How activations meet MXFP4 weights: f32 (exact decode of every weight) or int8 (activations
    /// quantized per 32 columns, integer block dot products: faster, not exact; docs/engine.md)
    #[arg(long = "activations", value_enum, default_value_t = ActivationsChoice::F32)]
    pub activations: ActivationsChoice,
}

/// The values of `--activations`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationsChoice {
    F32,
    Int8,
}

impl ActivationsArg {
    /// A matmul executor with `threads` threads and these activations.
    pub fn matmul(self, threads: usize) -> anyhow::Result<ue8_engine::Matmul> {
        let mut mm = ue8_engine::Matmul::new(threads)?;
        mm.set_activations(match self.activations {
            ActivationsChoice::F32 => ue8_engine::kernels::Activations::F32,
            ActivationsChoice::Int8 => ue8_engine::kernels::Activations::Int8,
        });
        Ok(mm)
    }
}
