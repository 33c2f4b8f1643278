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

/// The event header lines (`#YYMMDD HH:MM:SS server id ... `, up to the tab before the event's
/// own text), sorted: mysqlbinlog prints an Annotate_rows header after the next event's offset.
pub fn header_lines(text: &str) -> Vec<String> {
    let is_header = |l: &&str| l.len() > 7 && l.as_bytes()[1..7].iter().all(u8::is_ascii_digit);
    let mut headers: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter(is_header)
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    headers.sort();
    headers
}
