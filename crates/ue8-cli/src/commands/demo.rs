//! `ue8 demo` (not implemented yet).

/// Arguments of `ue8 demo`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ue8 demo` is not implemented yet")
}
