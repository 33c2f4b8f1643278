//! Writes the CRDs into `crds/` (or prints them with `--stdout`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let to_stdout = std::env::args().any(|a| a == "--stdout");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for crd in ferry_crds::crd::all() {
        let yaml = ferry_crds::crd::to_yaml(&crd);
        if to_stdout {
            println!("---\n{yaml}");
        } else {
            let path = dir.join(ferry_crds::crd::file_name(&crd));
            std::fs::write(&path, yaml)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
