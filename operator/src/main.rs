//! `ferry-operator`: the control plane. Reconcilers arrive with the operator issue; today it
//! prints the CRDs it serves so that the binary and its dependencies build in CI.

use clap::Parser;

/// Ferry's Kubernetes operator.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Print the CustomResourceDefinitions the operator serves and exit.
    #[arg(long)]
    print_crds: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_crds {
        for crd in ferry_crds::crd::all() {
            println!("---\n{}", ferry_crds::crd::to_yaml(&crd));
        }
        return Ok(());
    }
    anyhow::bail!("the reconcilers are not built yet; run with --print-crds")
}
