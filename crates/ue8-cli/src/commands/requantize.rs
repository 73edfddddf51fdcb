//! `ue8 requantize` (not implemented yet).

/// Arguments of `ue8 requantize`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 requantize` is not implemented yet")
}
