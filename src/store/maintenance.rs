//! Maintenance windows posted to the API. Windows from the config file are not stored here.

use chrono::{DateTime, Utc};

use crate::slo::maintenance::{MaintenanceSource, MaintenanceWindow};
use crate::store::{from_ms, known, to_ms, Store, StoreError};

const TABLE: &str = "maintenance_windows";

#[derive(sqlx::FromRow)]
struct WindowRow {
    id: i64,
    target: Option<String>,
    starts_at_ms: i64,
    ends_at_ms: i64,
    reason: String,
    source: String,
    created_at_ms: i64,
}

impl WindowRow {
    fn parse(self) -> Option<MaintenanceWindow> {
        let source = known(
            TABLE,
            "source",
            &self.source,
            MaintenanceSource::parse(&self.source),
        )?;
        Some(MaintenanceWindow {
            id: Some(self.id),
            target: self.target,
            starts_at: from_ms(self.starts_at_ms),
            ends_at: from_ms(self.ends_at_ms),
            reason: self.reason,
            source,
            created_at: Some(from_ms(self.created_at_ms)),
        })
    }
}

impl Store {
    /// Stores a window posted to the API (already checked) and returns it with its id.
    pub async fn insert_maintenance(
        &self,
        target: Option<&str>,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        reason: &str,
        created_at: DateTime<Utc>,
    ) -> Result<MaintenanceWindow, StoreError> {
        let id = sqlx::query(
            "INSERT INTO maintenance_windows (target, starts_at_ms, ends_at_ms, reason, source, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, 'api', ?5)",
        )
        .bind(target)
        .bind(to_ms(starts_at))
        .bind(to_ms(ends_at))
        .bind(reason)
        .bind(to_ms(created_at))
        .execute(self.pool())
        .await?
        .last_insert_rowid();
        Ok(MaintenanceWindow {
            id: Some(id),
            target: target.map(str::to_owned),
            starts_at: from_ms(to_ms(starts_at)),
            ends_at: from_ms(to_ms(ends_at)),
            reason: reason.to_owned(),
            source: MaintenanceSource::Api,
            created_at: Some(from_ms(to_ms(created_at))),
        })
    }

    /// Stored windows that end after `from` and start before `until`, by start time.
    pub async fn maintenance_windows(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        let rows: Vec<WindowRow> = sqlx::query_as(
            "SELECT id, target, starts_at_ms, ends_at_ms, reason, source, created_at_ms
             FROM maintenance_windows WHERE ends_at_ms > ?1 AND starts_at_ms < ?2
             ORDER BY starts_at_ms, id",
        )
        .bind(to_ms(from))
        .bind(to_ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(WindowRow::parse).collect())
    }
}
