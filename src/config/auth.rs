//! `auth`: API authentication; tokens and roles arrive with the operations work. Until then it accepts only `{}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {}
