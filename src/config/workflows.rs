//! `workflows`: Boss API workflows; their definitions arrive with the workflow engine. Until then it accepts only `{}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsConfig {}
