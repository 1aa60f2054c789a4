//! `heal`: Auto-heal; its settings arrive with supervised children and the heal loop. Until then it accepts only `{}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealConfig {}
