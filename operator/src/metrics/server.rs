//! Serves `/metrics` (OpenMetrics text), `/healthz` (the process answers) and `/readyz` (see
//! `crate::health`) over HTTP/1.1 with hyper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::health::Health;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// What the server answers from.
#[derive(Clone)]
struct Pages {
    metrics: Metrics,
    health: Health,
}

impl Pages {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
        }
        match request.uri().path() {
            "/metrics" => reply(StatusCode::OK, OPENMETRICS, self.metrics.render()),
            "/healthz" | "/livez" => reply(StatusCode::OK, TEXT, "ok\n".into()),
            "/readyz" => {
                let readiness = self.health.readiness();
                let code =
                    if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                reply(code, TEXT, readiness.report)
            }
            _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
        }
    }
}

fn reply(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

/// Binds `addr` and serves until `stop`; returns the bound address (`addr` may ask for port 0).
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(accept(listener, Pages { metrics, health }, stop));
    Ok(bound)
}

async fn accept(listener: TcpListener, pages: Pages, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("metrics server cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pages = pages.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = pages.answer(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("metrics connection ended: {e}");
            }
        });
    }
}
