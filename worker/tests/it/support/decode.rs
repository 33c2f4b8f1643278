//! Running binlog decoders (`ferry binlog decode`, `mariadb-binlog`) on a file.

use std::path::Path;
use std::process::Command;

/// Runs `program args... file`: its exit code, stdout and stderr.
pub fn run(program: &str, args: &[&str], file: &Path) -> (Option<i32>, String, String) {
    let output = Command::new(program).args(args).arg(file).output().expect("run decoder");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `###` row lines of `mysqlbinlog --verbose` style output, trailing spaces trimmed.
pub fn row_lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("###")).map(|l| l.trim_end().to_string()).collect()
}
