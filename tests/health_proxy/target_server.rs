//! A real HTTP target on a random port that a test switches between healthy, failing, slow and hanging.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 with `{"status":"ok"}`.
    Healthy,
    /// 500.
    Failing,
    /// 200 after this delay.
    Slow(Duration),
    /// Never answers.
    Hanging,
    /// 200 with `{"status":"degraded"}`.
    Degraded,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

pub struct TargetServer {
    pub addr: SocketAddr,
    shared: Shared,
}

impl TargetServer {
    pub async fn start(mode: Mode) -> Self {
        let shared = Shared {
            mode: Arc::new(Mutex::new(mode)),
            hits: Arc::new(AtomicUsize::new(0)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            most_in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let data = web::Data::new(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = listener.local_addr().expect("bound address");
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        // Runs until the test's runtime ends.
        tokio::spawn(server);
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// The most requests this server was answering at the same time.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }
}

async fn answer(shared: web::Data<Shared>) -> HttpResponse {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared
        .most_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);
    let response = respond(&shared).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn respond(shared: &Shared) -> HttpResponse {
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Healthy => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Mode::Degraded => HttpResponse::Ok().json(serde_json::json!({"status": "degraded"})),
        Mode::Failing => HttpResponse::InternalServerError().body("boom"),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
        }
        Mode::Hanging => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
    }
}
