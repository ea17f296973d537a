//! images.* and content.*

use schema::{
    ContentDigestParams, ContentListParams, ImageImportParams, ImageListParams, ImageNameParams,
    ImagePullParams,
};
use serde_json::json;

use super::{method, Module};

fn import_options(
    name: Option<String>,
    snapshotter: Option<String>,
    platform: Option<String>,
    all_platforms: bool,
) -> crate::service::images::ImportOptions {
    crate::service::images::ImportOptions {
        name,
        snapshotter,
        platform,
        all_platforms,
    }
}

pub(super) fn register(m: &mut Module) {
    method(m, "images.import", |app, p: ImageImportParams| async move {
        let images = app
            .images
            .import(
                p.namespace,
                p.path,
                import_options(p.name, p.snapshotter, p.platform, p.all_platforms),
            )
            .await?;
        Ok(json!({ "images": images }))
    });
    method(m, "images.pull", |app, p: ImagePullParams| async move {
        let image = app
            .images
            .pull(
                p.namespace,
                p.reference,
                p.plain_http,
                p.platform,
                p.snapshotter,
            )
            .await?;
        Ok(json!({ "image": image }))
    });
    method(
        m,
        "images.progress",
        |app, _p: ImageListParams| async move { Ok(app.images.progress()) },
    );
    method(m, "images.list", |app, p: ImageListParams| async move {
        Ok(json!({ "images": app.images.list(&p.namespace, &p.filters)? }))
    });
    method(m, "images.get", |app, p: ImageNameParams| async move {
        let (image, config) = app.images.get_with_config(&p.namespace, &p.name)?;
        Ok(json!({ "image": image, "config": config }))
    });
    method(
        m,
        "images.push",
        |app, p: schema::ImagePushParams| async move {
            app.images
                .push(
                    &p.namespace,
                    &p.name,
                    p.reference.as_deref(),
                    p.plain_http,
                    p.all_platforms,
                )
                .await
        },
    );
    method(
        m,
        "images.upload_begin",
        |app, p: schema::ImageUploadBeginParams| async move {
            let upload = app
                .images
                .upload_begin(
                    p.namespace,
                    import_options(p.name, p.snapshotter, p.platform, p.all_platforms),
                )
                .await?;
            Ok(json!({ "upload": upload }))
        },
    );
    method(
        m,
        "images.upload_write",
        |app, p: schema::ImageUploadWriteParams| async move {
            app.images.upload_write(&p.upload, &p.data).await?;
            Ok(json!({}))
        },
    );
    method(
        m,
        "images.upload_commit",
        |app, p: schema::ImageUploadParams| async move {
            let images = app.images.upload_commit(&p.upload).await?;
            Ok(json!({ "images": images }))
        },
    );
    method(
        m,
        "images.upload_abort",
        |app, p: schema::ImageUploadParams| async move {
            Ok(json!({ "aborted": app.images.upload_abort(&p.upload) }))
        },
    );
    method(
        m,
        "images.tag",
        |app, p: schema::ImageTagParams| async move {
            let image = app.images.tag(p.namespace, &p.source, &p.target).await?;
            Ok(serde_json::json!({ "image": image }))
        },
    );
    method(m, "images.delete", |app, p: ImageNameParams| async move {
        app.images.delete(p.namespace, p.name).await?;
        Ok(json!({}))
    });
    method(m, "content.list", |app, p: ContentListParams| async move {
        Ok(json!({ "blobs": app.content.list(&p.filters)? }))
    });
    method(
        m,
        "content.info",
        |app, p: ContentDigestParams| async move { Ok(json!({ "info": app.content.info(&p.digest)? })) },
    );
    method(
        m,
        "content.delete",
        |app, p: ContentDigestParams| async move {
            app.content.delete(p.namespace, p.digest).await?;
            Ok(json!({}))
        },
    );
}
