//! Bodies kept as sent (the status page's views, `/slo`'s pages): each with a gzip copy made once when it
//! is kept, and an `ETag`, so a request costs a lookup and a copy of a reference, never a serialization, a
//! render or a compression. `send` picks the copy the request accepts and answers a matching
//! `If-None-Match` with `304 Not Modified`. `Bounded` holds a few of them by key, so no client can fill
//! memory by asking for distinct pages.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

/// A body as sent, with its gzip copy and entity tags.
#[derive(Debug, Clone)]
pub struct KeptBody {
    /// When it was kept, on the process's monotonic time.
    pub at: Instant,
    /// The SLO pass it shows.
    pub generation: u64,
    pub identity: Bytes,
    /// None when compressing failed or did not make it smaller: the identity body is sent.
    pub gzip: Option<Bytes>,
    /// `"<hash of the body>"`; the gzip copy's is the same with `-gz` before the closing quote.
    etag: String,
    etag_gzip: String,
    /// The two as header values, made once.
    etag_value: Option<HeaderValue>,
    etag_gzip_value: Option<HeaderValue>,
}

impl KeptBody {
    /// Keeps `body`, compressing it once.
    pub fn new(generation: u64, body: Bytes) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        body.hash(&mut hasher);
        let hash = hasher.finish();
        let gzip = gzip(&body)
            .filter(|z| z.len() < body.len())
            .map(Bytes::from);
        let etag = format!("\"{hash:016x}\"");
        let etag_gzip = format!("\"{hash:016x}-gz\"");
        Self {
            at: Instant::now(),
            generation,
            identity: body,
            gzip,
            etag_value: HeaderValue::from_str(&etag).ok(),
            etag_gzip_value: HeaderValue::from_str(&etag_gzip).ok(),
            etag,
            etag_gzip,
        }
    }

    /// The identity body's entity tag.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The answer to `req`: `304` when its `If-None-Match` names this body (either copy), else `200` with
    /// the gzip copy when the request accepts gzip, the identity body otherwise. `response` carries the
    /// route's own headers (content type, policy, paging).
    pub fn send(&self, req: &HttpRequest, mut response: HttpResponseBuilder) -> HttpResponse {
        let gzip = self.gzip.as_ref().filter(|_| accepts_gzip(req));
        let etag = if gzip.is_some() {
            &self.etag_gzip_value
        } else {
            &self.etag_value
        };
        response.insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
        if let Some(value) = etag {
            response.insert_header((header::ETAG, value.clone()));
        }
        if none_match(req, &[&self.etag, &self.etag_gzip]) {
            return response
                .status(actix_web::http::StatusCode::NOT_MODIFIED)
                .finish();
        }
        match gzip {
            Some(body) => response
                .insert_header((header::CONTENT_ENCODING, "gzip"))
                .body(body.clone()),
            None => response.body(self.identity.clone()),
        }
    }
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// Whether `Accept-Encoding` lists `gzip` (or `*`) with a weight above zero.
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}

/// Whether `If-None-Match` names one of `etags` (weak comparison, as RFC 9110 asks for it) or is `*`.
fn none_match(req: &HttpRequest, etags: &[&str]) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || etags.contains(&tag)
        })
}

/// At most `capacity` kept bodies by key, all of one SLO pass: a body of an older pass is dropped when one
/// of a newer pass is kept, and the oldest kept makes room for a new key.
#[derive(Debug)]
pub struct Bounded<K> {
    capacity: usize,
    bodies: HashMap<K, Arc<KeptBody>>,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            bodies: HashMap::new(),
        }
    }

    pub fn get(&self, key: &K) -> Option<&Arc<KeptBody>> {
        self.bodies.get(key)
    }

    pub fn keep(&mut self, key: K, body: Arc<KeptBody>) {
        let generation = body.generation;
        self.bodies.retain(|_, b| b.generation >= generation);
        if !self.bodies.contains_key(&key) && self.bodies.len() >= self.capacity {
            if let Some(oldest) = self
                .bodies
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
            {
                self.bodies.remove(&oldest);
            }
        }
        self.bodies.insert(key, body);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn the_gzip_copy_decompresses_to_the_body() {
        let body = Bytes::from("<p>hello</p>".repeat(200));
        let kept = KeptBody::new(3, body.clone());
        let z = kept.gzip.clone().expect("smaller when compressed");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(z.len() < body.len() / 10);
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        for (value, gzip) in [
            ("gzip", true),
            ("gzip, deflate, br", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("*", true),
            ("gzip;q=0", false),
            ("deflate, br", false),
            ("identity", false),
        ] {
            let req = TestRequest::default()
                .insert_header((header::ACCEPT_ENCODING, value))
                .to_http_request();
            assert_eq!(accepts_gzip(&req), gzip, "{value}");
        }
        assert!(!accepts_gzip(&TestRequest::default().to_http_request()));
    }

    #[test]
    fn the_bound_holds_and_an_older_pass_is_dropped() {
        let mut kept = Bounded::new(3);
        for page in 0..10u32 {
            kept.keep(
                page,
                Arc::new(KeptBody::new(1, Bytes::from(page.to_string()))),
            );
            assert!(kept.len() <= 3);
        }
        assert!(kept.get(&9).is_some());
        kept.keep(42, Arc::new(KeptBody::new(2, Bytes::from("new"))));
        assert_eq!(kept.len(), 1);
        assert!(!kept.is_empty());
    }
}
