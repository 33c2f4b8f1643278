//! Remedies in the terms of each kind of source: my.cnf and a restart where the user runs the
//! server, parameter groups and reboots on AWS, server parameters or flags elsewhere.

use ferry_crds::source::SourceType;

/// How to set server variables (`name = value` pairs) on this kind of source.
pub fn settings(source_type: SourceType, pairs: &[(&str, &str)]) -> String {
    let list = pairs.iter().map(|(n, v)| format!("{n} = {v}")).collect::<Vec<_>>().join(", ");
    let flags = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(",");
    match source_type {
        SourceType::SelfManaged => format!(
            "Add `{list}` under [mysqld] in /etc/my.cnf (or /etc/mysql/my.cnf), restart MySQL \
             (`sudo systemctl restart mysqld`) and check with SHOW VARIABLES."
        ),
        SourceType::MariaDB => format!(
            "Add `{list}` under [mariadbd] in the server's option file (such as \
             /etc/mysql/mariadb.conf.d/50-server.cnf), restart MariaDB \
             (`sudo systemctl restart mariadb`) and check with SHOW VARIABLES."
        ),
        SourceType::RDSMySQL => format!(
            "In the Amazon RDS console, set {list} in a custom DB parameter group, attach it to \
             the instance and reboot it, then check with SHOW VARIABLES."
        ),
        SourceType::AuroraMySQL => format!(
            "In the Amazon RDS console, set {list} in a custom DB cluster parameter group, attach \
             it to the Aurora cluster and reboot the writer instance, then check with SHOW \
             VARIABLES."
        ),
        SourceType::AzureMySQL => format!(
            "In the Azure portal, open the Flexible Server's Settings > Server parameters, set \
             {list} and save (the portal restarts the server when a parameter needs it)."
        ),
        SourceType::CloudSQLMySQL => format!(
            "Set the database flags with `gcloud sql instances patch INSTANCE \
             --database-flags={flags}` (list the flags already set too: the option replaces \
             them); Cloud SQL restarts the instance when a flag needs it."
        ),
        SourceType::AlibabaRDSMySQL => format!(
            "In the ApsaraDB RDS console, open Parameters, set {list}, apply the changes \
             (restart the instance when the console says so)."
        ),
    }
}

/// How to turn the binary log on.
pub fn log_bin(source_type: SourceType) -> String {
    match source_type {
        SourceType::SelfManaged | SourceType::MariaDB => settings(
            source_type,
            &[
                ("log_bin", "mysql-bin"),
                ("server_id", "<a unique number > 0>"),
                ("binlog_format", "ROW"),
            ],
        ),
        SourceType::RDSMySQL => "RDS writes a binary log only when automated backups are on: set \
             the backup retention period to 1 day or more (Modify instance > Backup), then set \
             binlog_format = ROW in the instance's DB parameter group and reboot."
            .into(),
        SourceType::AuroraMySQL => "Aurora writes a binary log only when binlog_format is set in \
             the DB cluster parameter group: set binlog_format = ROW there, attach the group to \
             the cluster and reboot the writer instance."
            .into(),
        SourceType::AzureMySQL => "Azure Database for MySQL - Flexible Server always writes a \
             binary log on the primary; point the MigrationSource at the primary server rather \
             than a read replica."
            .into(),
        SourceType::CloudSQLMySQL => "Enable point-in-time recovery (which turns on binary \
             logging) in the instance's Backups settings, or `gcloud sql instances patch INSTANCE \
             --enable-bin-log`."
            .into(),
        SourceType::AlibabaRDSMySQL => "ApsaraDB RDS for MySQL keeps the binary log on; point the \
             MigrationSource at the primary instance rather than a read-only instance."
            .into(),
    }
}

/// How to keep binary logs for `seconds`.
pub fn retention(source_type: SourceType, seconds: u64) -> String {
    let hours = seconds / 3600;
    match source_type {
        SourceType::RDSMySQL | SourceType::AuroraMySQL => format!(
            "Run `CALL mysql.rds_set_configuration('binlog retention hours', {hours});` on the \
             source (RDS and Aurora ignore the server variables and purge binary logs as soon as \
             they can unless this is set); check with `CALL mysql.rds_show_configuration;`."
        ),
        SourceType::AlibabaRDSMySQL => format!(
            "In the ApsaraDB RDS console, under Backup and Restoration > Backup Settings, keep \
             local binary logs for at least {hours} hours."
        ),
        SourceType::SelfManaged | SourceType::AzureMySQL | SourceType::CloudSQLMySQL => {
            settings(source_type, &[("binlog_expire_logs_seconds", &seconds.to_string())])
        }
        SourceType::MariaDB => {
            settings(source_type, &[("binlog_expire_logs_seconds", &seconds.to_string())])
                + " (MariaDB before 10.6: expire_logs_days instead.)"
        }
    }
}

/// `GRANT privileges ON object TO grantee;`.
pub fn grant(privileges: &[&str], object: &str, grantee: &str) -> String {
    format!("Run `GRANT {} ON {object} TO {grantee};` as an administrator.", privileges.join(", "))
}
