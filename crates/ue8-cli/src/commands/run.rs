//! `ue8 run` (not implemented yet).

/// Arguments of `ue8 run`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 run` is not implemented yet")
}
