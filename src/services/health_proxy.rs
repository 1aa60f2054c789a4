//! Health Proxy (:3002): probes every configured service and answers how healthy everything is.

use utoipa_actix_web::service_config::ServiceConfig;

use crate::services::common;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(common::health).service(common::metrics);
}
