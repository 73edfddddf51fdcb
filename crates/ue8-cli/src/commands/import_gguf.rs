//! `ue8 import-gguf` (not implemented yet).

/// Arguments of `ue8 import-gguf`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 import-gguf` is not implemented yet")
}
