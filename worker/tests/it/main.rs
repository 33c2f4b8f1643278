//! The worker's integration tests, one binary (`cargo test --workspace --locked --test it`; one
//! file: `-- full_types::`). Each module was a test binary of its own: together they link the
//! workspace and compile `support` once.
//!
//! The tests share this process, so none changes what the others see: none sets environment
//! variables or the working directory (`ferry` runs as a child process, given its environment),
//! and each starts its own servers on free ports, dropped when the test ends.

mod precheck_support;
mod support;

mod binlog_decode;
mod copy_resume_faults;
mod cutover;
mod cutover_scope;
mod ddl_corpus;
mod disk_faults;
mod edits;
mod full_and_incremental;
mod full_kill;
mod full_tidb;
mod full_types;
mod image;
mod incremental_cascade;
mod incremental_conflicts;
mod incremental_exactness;
mod incremental_fuzz;
mod incremental_kill_resume;
mod incremental_merge;
mod incremental_overwrite;
mod incremental_parallel;
mod incremental_reconnect;
mod incremental_replication;
mod incremental_tidb;
mod job_identity;
mod meta_schema;
mod mysql_auth;
mod mysql_binlog;
mod mysql_failover;
mod mysql_live_binlog;
mod network_faults;
mod no_silent_damage;
mod objects;
mod online_ddl;
mod precheck_cli;
mod precheck_privileges;
mod precheck_schema;
mod precheck_source;
mod selection;
mod server_restarts;
mod tls;
mod validate_cli;
mod validation;
mod verify;
