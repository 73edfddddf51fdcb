//! `ue8 quantize` (not implemented yet).

/// Arguments of `ue8 quantize`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 quantize` is not implemented yet")
}
