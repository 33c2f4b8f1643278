//! `ferry validate -f FILE`.

use std::path::Path;
use std::process::ExitCode;

use crate::manifest::Manifest;

pub fn run(file: &Path) -> crate::Result<ExitCode> {
    let manifest = Manifest::load(file)?;
    println!("{}: {}", file.display(), manifest.summary());
    Ok(ExitCode::SUCCESS)
}
