//! `workflows`: the Boss API's runbook workflows (`definitions`) and the risk rules that gate them (`risk`).
//! The section is kept as written and read into `Definitions` once the rest of the config is known (the
//! targets and token variables the definitions are checked against), while the config loads.

pub mod definition;
pub mod risk;
pub mod template;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::config::Invalid;
use definition::{Definitions, Environment};

/// The `workflows` section: as written, and as read (valid) once `load` ran.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowsConfig {
    section: Value,
    definitions: Definitions,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        Self {
            section: Value::Object(serde_json::Map::new()),
            definitions: Definitions::default(),
        }
    }
}

impl WorkflowsConfig {
    /// Reads and checks the definitions against the rest of the config.
    pub fn load(&mut self, env: &Environment) -> Result<(), Invalid> {
        self.definitions = Definitions::from_json(&self.section, env)?;
        Ok(())
    }

    /// A section from JSON, read at once against `env`.
    pub fn from_value(section: Value, env: &Environment) -> Result<Self, Invalid> {
        let mut config = Self {
            section,
            definitions: Definitions::default(),
        };
        config.load(env)?;
        Ok(config)
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }
}

impl Serialize for WorkflowsConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.section.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WorkflowsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            section: Value::deserialize(deserializer)?,
            definitions: Definitions::default(),
        })
    }
}
