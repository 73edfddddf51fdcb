//! `ue8 inspect` (not implemented yet).

/// Arguments of `ue8 inspect`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 inspect` is not implemented yet")
}
