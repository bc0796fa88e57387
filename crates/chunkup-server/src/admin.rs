//! Admin endpoints (never fault-injected): upload inspection and run-time
//! fault control.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::AppState;
use crate::faults::{FaultCounts, FaultSpec};
use crate::store::Snapshot;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/_admin/uploads", get(list))
        .route("/_admin/uploads/{id}", get(one))
        .route("/_admin/faults", get(get_faults).put(put_faults))
}

/// One upload as the admin API shows it.
#[derive(Debug, Serialize)]
struct UploadInfo {
    #[serde(flatten)]
    snap: Snapshot,
    /// Hex sha256 of the stored bytes; only on the single-upload endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Debug, Serialize)]
struct FaultsInfo {
    spec: String,
    counts: FaultCounts,
}

fn storage_error(e: &std::io::Error) -> Response {
    tracing::error!(error = %e, "admin: storage error");
    (StatusCode::INTERNAL_SERVER_ERROR, "storage error").into_response()
}

async fn list(State(app): State<AppState>) -> Response {
    match app.store.list().await {
        Ok(snaps) => Json(
            snaps
                .into_iter()
                .map(|snap| UploadInfo { snap, sha256: None })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => storage_error(&e),
    }
}

async fn one(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let upload = match app.store.get(&id).await {
        Ok(Some(u)) => u,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such upload").into_response(),
        Err(e) => return storage_error(&e),
    };
    let snap = upload.snapshot();
    match upload.sha256().await {
        Ok(sha) => Json(UploadInfo {
            snap,
            sha256: Some(sha),
        })
        .into_response(),
        Err(e) => storage_error(&e),
    }
}

fn faults_info(app: &AppState) -> Json<FaultsInfo> {
    Json(FaultsInfo {
        spec: app.faults.spec().to_string(),
        counts: app.faults.counts(),
    })
}

async fn get_faults(State(app): State<AppState>) -> Json<FaultsInfo> {
    faults_info(&app)
}

async fn put_faults(State(app): State<AppState>, body: String) -> Response {
    match body.parse::<FaultSpec>() {
        Ok(spec) => {
            tracing::info!(%spec, "faults replaced");
            app.faults.set(spec);
            faults_info(&app).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
