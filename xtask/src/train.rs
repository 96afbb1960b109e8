//! Filled by its issue; until then the command says so instead of pretending to work.

#[derive(clap::Args)]
pub struct Args {}

#[derive(clap::Args)]
pub struct SftArgs {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this command is not implemented yet")
}

pub fn run_sft(_args: SftArgs) -> anyhow::Result<()> {
    anyhow::bail!("this command is not implemented yet")
}
