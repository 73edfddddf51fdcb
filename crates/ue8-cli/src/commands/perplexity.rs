//! `ue8 perplexity` (not implemented yet).

/// Arguments of `ue8 perplexity`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 perplexity` is not implemented yet")
}
