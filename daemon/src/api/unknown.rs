//! WebSocket's unknown methods answered as HTTP's and NDJSON's are (issue 14): `-32601`
//! naming the method and the closest served one, instead of jsonrpsee's bare "Method not
//! found". An RPC middleware, since jsonrpsee dispatches WebSocket messages itself.

use std::future::Future;

use jsonrpsee::core::server::MethodResponse;
use jsonrpsee::server::middleware::rpc::{Batch, Notification, Request, RpcServiceT};
use jsonrpsee::Methods;

use super::envelope::method_not_found;

#[derive(Clone)]
pub struct UnknownMethod<S> {
    pub inner: S,
    pub methods: Methods,
}

impl<S> RpcServiceT for UnknownMethod<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse> + Send + Sync + Clone + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let unknown = self.methods.method(req.method_name()).is_none();
        let error = unknown.then(|| method_not_found(&self.methods, req.method_name()));
        let inner = self.inner.clone();
        async move {
            match error {
                Some(e) => MethodResponse::error(req.id(), e),
                None => inner.call(req).await,
            }
        }
    }

    fn batch<'a>(
        &self,
        requests: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        self.inner.batch(requests)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
