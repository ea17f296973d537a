//! The `images.export` subscription (berth extension): the tar in base64 chunks as
//! `images.export_data` notifications `{data}`, then `{end: true, size}`; an error midway
//! ends the stream with a JSON-RPC error notification. WebSocket and NDJSON only.

use base64::Engine;
use jsonrpsee::core::SubscriptionError;
use serde_json::json;

use super::events::subscription_error;
use super::stream::{open, Queued, Unsent};
use super::Module;
use crate::service::{self, images::ExportFormat};

/// Notification method name of `images.export`.
pub(crate) const EXPORT_NOTIFICATION: &str = "images.export_data";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    #[serde(default = "default_namespace")]
    namespace: String,
    names: Vec<String>,
    #[serde(default)]
    format: Option<String>,
    /// Every platform of each image's target, not only the host's manifest.
    #[serde(default)]
    all_platforms: bool,
}

fn default_namespace() -> String {
    schema::DEFAULT_NAMESPACE.to_owned()
}

pub(super) fn register(m: &mut Module) {
    let registered = m.register_subscription(
        "images.export",
        EXPORT_NOTIFICATION,
        "images.export_cancel",
        |params, pending, app, _| async move {
            let started = open(params, pending, |p: ExportParams| async move {
                let format = ExportFormat::parse(p.format.as_deref())?;
                app.images
                    .export(&p.namespace, &p.names, format, p.all_platforms)
            })
            .await;
            let Some((sink, mut chunks)) = started else {
                return Ok(());
            };
            let mut queued = Queued::default();
            let mut size = 0u64;
            while let Some(chunk) = chunks.recv().await {
                let bytes = chunk.map_err(|e| {
                    subscription_error(service::Error::Internal(format!("exporting: {e}")))
                })?;
                size += bytes.len() as u64;
                let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
                let msg = serde_json::value::to_raw_value(&json!({ "data": data }))
                    .map_err(|e| SubscriptionError::from(format!("encoding: {e}")))?;
                match queued.send(&sink, msg, None).await {
                    Ok(()) => {}
                    Err(Unsent::Closed | Unsent::Stuck(_)) => return Ok(()),
                }
            }
            let end = serde_json::value::to_raw_value(&json!({ "end": true, "size": size }))
                .map_err(|e| SubscriptionError::from(format!("encoding: {e}")))?;
            let _ = queued.send(&sink, end, None).await;
            Ok(())
        },
    );
    if let Err(e) = registered {
        panic!("registering images.export: {e}");
    }
}
