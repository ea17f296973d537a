//! `events.unsubscribe` by name. jsonrpsee's generated unsubscribe method reads its id
//! positionally (`[ID]`), but berth's contract takes params by name, so `{"subscription": ID}`
//! is rewritten to `[ID]` before dispatch: by this RPC middleware for HTTP/WebSocket, and by
//! the NDJSON transport through [`positional`].

use std::borrow::Cow;
use std::future::Future;

use jsonrpsee::server::middleware::rpc::{Batch, Notification, Request, RpcServiceT};
use schema::methods::UNSUBSCRIBE_METHODS;
use serde_json::value::RawValue;

/// `{"subscription": X, ...}` -> `[X]` for unsubscribe methods; `None` leaves params as they are.
pub fn positional(method: &str, params: Option<&RawValue>) -> Option<Box<RawValue>> {
    if !UNSUBSCRIBE_METHODS.contains(&method) {
        return None;
    }
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(params?.get()).ok()?;
    let id = obj.get("subscription")?;
    serde_json::value::to_raw_value(&[id]).ok()
}

/// RPC middleware applying [`positional`] to single calls.
#[derive(Clone)]
pub struct UnsubscribeByName<S>(pub S);

impl<S> RpcServiceT for UnsubscribeByName<S>
where
    S: RpcServiceT + Send + Sync + Clone + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        mut req: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        if let Some(p) = positional(req.method_name(), req.params.as_deref()) {
            req.params = Some(Cow::Owned(p));
        }
        self.0.call(req)
    }

    fn batch<'a>(
        &self,
        requests: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        self.0.batch(requests)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.0.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_subscription_becomes_positional_only_for_unsubscribe() {
        let p =
            RawValue::from_string(r#"{"subscription":"42","namespace":"x"}"#.into()).expect("raw");
        let out = positional("events.unsubscribe", Some(&p)).expect("rewritten");
        assert_eq!(out.get(), r#"["42"]"#);
        assert!(positional("events.list", Some(&p)).is_none());
        let arr = RawValue::from_string(r#"["42"]"#.into()).expect("raw");
        assert!(positional("events.unsubscribe", Some(&arr)).is_none());
    }
}
