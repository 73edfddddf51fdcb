//! `ue8 chips` (not implemented yet).

/// Arguments of `ue8 chips`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 chips` is not implemented yet")
}
