//! `ue8 plan` (not implemented yet).

/// Arguments of `ue8 plan`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 plan` is not implemented yet")
}
