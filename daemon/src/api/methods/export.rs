//! The `images.export` subscription (berth extension): the tar in base64 chunks as
//! `images.export_data` notifications `{data}`, then `{end: true, size}`; an error midway
//! ends the stream with a JSON-RPC error notification. WebSocket and NDJSON only.

use base64::Engine;
use schema::methods::{ImagesExport, Method, Subscription};
use schema::ExportChunk;

use super::events::subscription_error;
use super::stream::{encode, open, Queued, Unsent};
use super::Module;
use crate::service::images::export::EXPORT_PATIENCE;
use crate::service::{self, images::ExportFormat};

pub(super) fn register(m: &mut Module) {
    let registered = m.register_subscription(
        ImagesExport::NAME,
        ImagesExport::NOTIFICATION,
        ImagesExport::UNSUBSCRIBE,
        |params, pending, app, _| async move {
            let started = open::<ImagesExport, _, _, _>(params, pending, |p| async move {
                let format = ExportFormat::parse(p.format.as_deref())?;
                app.images
                    .export(&p.namespace, &p.names, format, p.all_platforms)
                    .await
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
                let msg = encode::<ImagesExport>(&ExportChunk {
                    data: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                    end: false,
                    size: None,
                })?;
                match queued.send(&sink, msg, Some(EXPORT_PATIENCE)).await {
                    Ok(()) => {}
                    Err(Unsent::Closed | Unsent::Stuck(_)) => return Ok(()),
                }
            }
            let end = encode::<ImagesExport>(&ExportChunk {
                data: None,
                end: true,
                size: Some(size),
            })?;
            let _ = queued.send(&sink, end, Some(EXPORT_PATIENCE)).await;
            Ok(())
        },
    );
    if let Err(e) = registered {
        panic!("registering {}: {e}", ImagesExport::NAME);
    }
}
