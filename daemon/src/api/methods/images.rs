//! images.* and content.*

use schema::methods::{
    ContentsDelete, ContentsInfo, ContentsList, ImagesDelete, ImagesGet, ImagesImport, ImagesList,
    ImagesProgress, ImagesPull, ImagesPush, ImagesTag, ImagesUploadAbort, ImagesUploadBegin,
    ImagesUploadCommit, ImagesUploadWrite,
};
use schema::{
    Aborted, ContentInfoReply, ContentList, Empty, ImageDetail, ImageList, ImageReply, Upload,
};

use super::{method, method_peer, Module};

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
    method::<ImagesImport, _, _>(m, |app, p| async move {
        let opts = import_options(p.name, p.snapshotter, p.platform, p.all_platforms);
        let images = app.images.import(p.namespace, p.path, opts).await?;
        Ok(ImageList { images })
    });
    method::<ImagesPull, _, _>(m, |app, p| async move {
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
        Ok(ImageReply { image })
    });
    method::<ImagesProgress, _, _>(m, |app, _| async move { Ok(app.images.progress()) });
    method::<ImagesList, _, _>(m, |app, p| async move {
        Ok(ImageList {
            images: app.images.list(p.namespace, p.filters).await?,
        })
    });
    method::<ImagesGet, _, _>(m, |app, p| async move {
        let (image, config) = app.images.get_with_config(&p.namespace, &p.name)?;
        Ok(ImageDetail { image, config })
    });
    method::<ImagesPush, _, _>(m, |app, p| async move {
        app.images
            .push(
                &p.namespace,
                &p.name,
                p.reference.as_deref(),
                p.plain_http,
                p.all_platforms,
            )
            .await
    });
    method_peer::<ImagesUploadBegin, _, _>(m, |app, p, peer| async move {
        let opts = import_options(p.name, p.snapshotter, p.platform, p.all_platforms);
        let upload = app.images.upload_begin(p.namespace, opts, peer).await?;
        Ok(Upload { upload })
    });
    method_peer::<ImagesUploadWrite, _, _>(m, |app, p, peer| async move {
        let images = &app.images;
        images
            .upload_write(&p.namespace, &p.upload, &p.data, peer)
            .await?;
        Ok(Empty {})
    });
    method_peer::<ImagesUploadCommit, _, _>(m, |app, p, peer| async move {
        let images = app
            .images
            .upload_commit(&p.namespace, &p.upload, peer)
            .await?;
        Ok(ImageList { images })
    });
    method_peer::<ImagesUploadAbort, _, _>(m, |app, p, peer| async move {
        Ok(Aborted {
            aborted: app.images.upload_abort(&p.namespace, &p.upload, peer),
        })
    });
    method::<ImagesTag, _, _>(m, |app, p| async move {
        let image = app.images.tag(p.namespace, &p.source, &p.target).await?;
        Ok(ImageReply { image })
    });
    method::<ImagesDelete, _, _>(m, |app, p| async move {
        app.images.delete(p.namespace, p.name, p.force).await?;
        Ok(Empty {})
    });
    method::<ContentsList, _, _>(m, |app, p| async move {
        Ok(ContentList {
            blobs: app.content.list(&p.filters).await?,
        })
    });
    method::<ContentsInfo, _, _>(m, |app, p| async move {
        Ok(ContentInfoReply {
            info: app.content.info(&p.digest)?,
        })
    });
    method::<ContentsDelete, _, _>(m, |app, p| async move {
        app.content.delete(p.namespace, p.digest).await?;
        Ok(Empty {})
    });
}
