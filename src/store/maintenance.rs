//! Maintenance windows posted to the API. Windows from the config file are not stored here.

use chrono::{DateTime, Utc};

use crate::records::maintenance::{MaintenanceSource, MaintenanceWindow};
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
    retroactive: bool,
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
            retroactive: self.retroactive,
        })
    }
}

/// A window to store, already checked by the caller.
#[derive(Debug, Clone, Copy)]
pub struct NewWindow<'a> {
    pub target: Option<&'a str>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: &'a str,
    pub retroactive: bool,
    pub created_at: DateTime<Utc>,
}

/// Why a window was not stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertMaintenanceError {
    /// `max_open` stored windows have not ended yet.
    #[error("{open} maintenance windows have not ended yet, the limit")]
    TooManyOpen { open: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Stores a window posted to the API (already checked) and returns it with its id, unless `max_open`
    /// stored windows have not ended at `window.created_at`: the count and the insert are one statement, so
    /// concurrent posts cannot pass the cap together.
    pub async fn insert_maintenance_capped(
        &self,
        window: NewWindow<'_>,
        max_open: u32,
    ) -> Result<MaintenanceWindow, InsertMaintenanceError> {
        let created = to_ms(window.created_at);
        let done = sqlx::query(
            "INSERT INTO maintenance_windows
                 (target, starts_at_ms, ends_at_ms, reason, source, created_at_ms, retroactive)
             SELECT ?1, ?2, ?3, ?4, 'api', ?5, ?6
             WHERE (SELECT count(*) FROM maintenance_windows WHERE ends_at_ms > ?5) < ?7",
        )
        .bind(window.target)
        .bind(to_ms(window.starts_at))
        .bind(to_ms(window.ends_at))
        .bind(window.reason)
        .bind(created)
        .bind(window.retroactive)
        .bind(i64::from(max_open))
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM maintenance_windows WHERE ends_at_ms > ?1",
            )
            .bind(created)
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from)?;
            return Err(InsertMaintenanceError::TooManyOpen {
                open: u64::try_from(open).unwrap_or(0),
            });
        }
        Ok(MaintenanceWindow {
            id: Some(done.last_insert_rowid()),
            target: window.target.map(str::to_owned),
            starts_at: from_ms(to_ms(window.starts_at)),
            ends_at: from_ms(to_ms(window.ends_at)),
            reason: window.reason.to_owned(),
            source: MaintenanceSource::Api,
            created_at: Some(from_ms(created)),
            retroactive: window.retroactive,
        })
    }

    /// Stores a window (already checked, not retroactive) without a cap on open windows: for generated
    /// histories and tests.
    pub async fn insert_maintenance(
        &self,
        target: Option<&str>,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        reason: &str,
        created_at: DateTime<Utc>,
    ) -> Result<MaintenanceWindow, StoreError> {
        let window = NewWindow {
            target,
            starts_at,
            ends_at,
            reason,
            retroactive: false,
            created_at,
        };
        match self.insert_maintenance_capped(window, u32::MAX).await {
            Ok(window) => Ok(window),
            Err(InsertMaintenanceError::Store(e)) => Err(e),
            // Cannot happen: no table holds u32::MAX rows; report it as a constraint failure all the same.
            Err(e @ InsertMaintenanceError::TooManyOpen { .. }) => {
                Err(StoreError::from(sqlx::Error::Protocol(e.to_string())))
            }
        }
    }

    /// Stored windows that end after `from` and start before `until`, by start time.
    pub async fn maintenance_windows(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        self.maintenance_windows_first(from, until, u32::MAX).await
    }

    /// The first `limit` stored windows (by start, end, id) that end after `from` and start before `until`.
    pub async fn maintenance_windows_first(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        let rows: Vec<WindowRow> = sqlx::query_as(
            "SELECT id, target, starts_at_ms, ends_at_ms, reason, source, created_at_ms, retroactive
             FROM maintenance_windows WHERE ends_at_ms > ?1 AND starts_at_ms < ?2
             ORDER BY starts_at_ms, ends_at_ms, id LIMIT ?3",
        )
        .bind(to_ms(from))
        .bind(to_ms(until))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(WindowRow::parse).collect())
    }
}
