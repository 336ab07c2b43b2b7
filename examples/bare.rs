//! The baseline for the load benchmark: a minimal axum server that answers every request
//! `success` without any work. `cargo run --release --example bare -- 127.0.0.1:0` prints
//! `listening on ADDR`.

use axum::Router;
use axum::routing::any;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new().fallback(any(|| async { "success" }));
    axum::serve(listener, app).await
}
