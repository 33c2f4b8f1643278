//! Writes the CRDs into `crds/` and their copies into `deploy/crds/` (kustomize cannot reach
//! outside `deploy/`) and `charts/ferry/files/crds/` (nor can Helm outside the chart), or prints
//! them with `--stdout`. `crds/tests/crds.rs` fails when any copy is stale.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let to_stdout = std::env::args().any(|a| a == "--stdout");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for crd in ferry_crds::crd::all() {
        let yaml = ferry_crds::crd::to_yaml(&crd);
        if to_stdout {
            println!("---\n{yaml}");
            continue;
        }
        for copy in ferry_crds::crd::COPIES {
            let path = dir.join(copy).join(ferry_crds::crd::file_name(&crd));
            std::fs::write(&path, &yaml)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
