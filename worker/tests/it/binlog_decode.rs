//! `ferry binlog decode`: the `--verbose` row lines, the `# at` offsets and the event headers
//! (with `--start-position`/`--stop-position` too) match `mariadb-binlog` for the same MariaDB
//! binlog file; corrupt and truncated files are errors that say so.

use crate::support;

use std::path::PathBuf;

use ferry_harness::MariaDb;
use ferry_harness::SqlServer;
use support::decode::{header_lines, row_lines, run};

async fn binlog_with_rows() -> (MariaDb, PathBuf) {
    let source = MariaDb::source().await.expect("source");
    source
        .exec(
            "CREATE DATABASE app;
             CREATE TABLE app.t (id INT PRIMARY KEY, name VARCHAR(30), big BIGINT, price DECIMAL(10,3),
               dt DATETIME, d DATE, neg INT, note TEXT);
             INSERT INTO app.t VALUES (1, 'one', 9007199254740993, 12.5, '2024-01-02 03:04:05',
               '2024-01-02', -5, NULL), (2, 'it''s', -1, -0.001, '1999-12-31 23:59:59', '1999-12-31', 0, 'x');
             UPDATE app.t SET name = 'uno', price = 99.999 WHERE id = 1;
             DELETE FROM app.t WHERE id = 2;
             FLUSH BINARY LOGS;",
        )
        .await
        .expect("write rows");
    let file = source.dir().join("binlog/mysql-bin.000001");
    assert!(file.exists(), "no binlog at {}", file.display());
    (source, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_rows_match_mariadb_binlog() {
    let (_source, file) = binlog_with_rows().await;
    let (code, ours, err) =
        run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode", "--verbose"], &file);
    assert_eq!(code, Some(0), "{err}");
    let (code, theirs, err) = run("mariadb-binlog", &["--verbose"], &file);
    assert_eq!(code, Some(0), "{err}");
    let ours = row_lines(&ours);
    let theirs = row_lines(&theirs);
    assert!(ours.iter().any(|l| l == "### INSERT INTO `app`.`t`"), "{ours:#?}");
    assert_eq!(ours, theirs);
    assert!(run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode"], &file).1.contains("GTID 0-"));
}

/// Offsets and headers (time in the TZ given, server id, end position, CRC32) as mariadb-binlog
/// prints them, for the whole file and for a range of it.
#[tokio::test(flavor = "multi_thread")]
async fn offsets_and_headers_match_mariadb_binlog() {
    let (_source, file) = binlog_with_rows().await;
    let (_, whole, _) = run("mariadb-binlog", &[], &file);
    let offsets: Vec<u64> =
        whole.lines().filter_map(|l| l.strip_prefix("# at ")?.parse().ok()).collect();
    assert!(offsets.len() > 10, "{whole}");
    let (start, stop) = (offsets[offsets.len() / 3].to_string(), offsets[offsets.len() / 2]);
    let stop = (stop + 1).to_string();
    let ranges: [&[&str]; 3] = [
        &[],
        &["--start-position", start.as_str()],
        &["--start-position", start.as_str(), "--stop-position", stop.as_str()],
    ];
    for range in ranges {
        let decode = |program: &str, args: &[&str]| {
            let mut command = std::process::Command::new(program);
            command.args(args).args(range).arg(&file).env("TZ", "Asia/Kolkata");
            let output = command.output().expect("run decoder");
            assert!(output.status.success(), "{program}: {output:?}");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let ours = decode(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode"]);
        let theirs = decode("mariadb-binlog", &[]);
        let at = |text: &str| -> Vec<String> {
            text.lines().filter(|l| l.starts_with("# at ")).map(Into::into).collect()
        };
        assert_eq!(at(&ours), at(&theirs), "{range:?}");
        assert_eq!(header_lines(&ours), header_lines(&theirs), "{range:?}");
        assert!(header_lines(&ours).iter().all(|h| h.contains(" CRC32 0x")), "{ours}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_and_truncated_files_are_errors() {
    let (_source, file) = binlog_with_rows().await;
    let bytes = std::fs::read(&file).expect("read binlog");
    let dir = tempfile::tempdir().expect("tempdir");

    // A flipped byte inside the row data: the CRC32 no longer matches.
    let at = bytes.windows(3).position(|w| w == b"uno").unwrap_or(bytes.len() - 40);
    let mut corrupt = bytes.clone();
    corrupt[at] ^= 0x20;
    let path = dir.path().join("corrupt.000001");
    std::fs::write(&path, &corrupt).expect("write");
    let (code, _, err) = run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode", "-v"], &path);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");

    for cut in [bytes.len() - 7, 4 + 10, 200] {
        let path = dir.path().join(format!("cut-{cut}.000001"));
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let (code, _, err) = run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode", "-v"], &path);
        assert_eq!(code, Some(1), "cut at {cut}: {err}");
        assert!(err.contains("truncated"), "cut at {cut}: {err}");
        assert!(!err.contains("panicked"), "cut at {cut}: {err}");
    }

    let path = dir.path().join("not-a-binlog");
    std::fs::write(&path, b"hello world").expect("write");
    let (code, _, err) = run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode"], &path);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a binlog file"), "{err}");
}
