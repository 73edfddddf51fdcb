//! `ue8 verify` (not implemented yet).

/// Arguments of `ue8 verify`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 verify` is not implemented yet")
}
