//! Waiting for cluster definitions: CRDs Established, Namespaces Active.

use gitops_core::Object;
use serde_json::Value;

use crate::error::ApplyError;
use crate::ssa::SsaApplier;

impl SsaApplier {
    /// Waits until a CRD has `Established=True` or a Namespace `phase: Active`; other kinds
    /// return at once. Polls every 250 ms up to the applier's wait timeout.
    pub async fn wait_ready(&self, object: &Object) -> Result<(), ApplyError> {
        let condition = match object.kind() {
            "CustomResourceDefinition" => "Established",
            "Namespace" => "Active",
            _ => return Ok(()),
        };
        let id = object.id()?;
        let (api, _) = self
            .api_for(object.api_version(), object.kind(), None, &id.to_string())
            .await?;
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        loop {
            let live = crate::ssa::retry_transport(|| api.get_opt(object.name()))
                .await
                .map_err(|source| ApplyError::Api {
                    object: id.to_string(),
                    op: "get",
                    source,
                })?;
            if let Some(live) = live {
                let status = live.data.get("status");
                let ready = match condition {
                    "Established" => status
                        .and_then(|s| s.get("conditions"))
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c.get("type") == Some(&"Established".into())
                                    && c.get("status") == Some(&"True".into())
                            })
                        }),
                    _ => status.and_then(|s| s.get("phase")) == Some(&Value::from("Active")),
                };
                if ready {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::WaitTimeout {
                    object: id.to_string(),
                    condition,
                    seconds: self.wait_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.wait_interval).await;
        }
    }
}
