//! `backup`: where `hale backup` and `POST /backup` put their backups, and how many they keep.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// The folder of backups (created when missing). Absent: a `backups` folder beside the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// How many backups the folder keeps: after each backup the oldest beyond this many are deleted.
    pub keep: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            // A week of daily backups.
            keep: 7,
        }
    }
}

impl BackupConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(Invalid::at("backup.dir", "the path is empty"));
        }
        if !(1..=1000).contains(&self.keep) {
            return Err(Invalid::at(
                "backup.keep",
                format!("{} is out of range 1..=1000", self.keep),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_and_dir_are_checked() {
        let zero = BackupConfig {
            keep: 0,
            ..BackupConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(Invalid::at("backup.keep", "0 is out of range 1..=1000"))
        );
        let empty = BackupConfig {
            dir: Some(PathBuf::new()),
            ..BackupConfig::default()
        };
        assert_eq!(
            empty.validate(),
            Err(Invalid::at("backup.dir", "the path is empty"))
        );
    }
}
