//! `alerts`: Alert manager; its rules and channels arrive with the alerting work. Until then it accepts only `{}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {}
