//! `ue8 bench` (not implemented yet).

/// Arguments of `ue8 bench`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 bench` is not implemented yet")
}
