//! `ue8 dequantize` (not implemented yet).

/// Arguments of `ue8 dequantize`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 dequantize` is not implemented yet")
}
