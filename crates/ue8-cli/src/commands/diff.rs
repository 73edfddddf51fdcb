//! `ue8 diff` (not implemented yet).

/// Arguments of `ue8 diff`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 diff` is not implemented yet")
}
