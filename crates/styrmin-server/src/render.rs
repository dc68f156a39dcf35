//! Rendering a driver's values template on the server. A template is an operator's code: it
//! runs on its own threads (never a thread of the async runtime, never while a database
//! transaction is open), a few at a time, under a fuel budget (instructions and data) and a
//! wall-clock limit, so one deployment cannot stall the requests of everyone else.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use styrmin_core::ValuesTemplate;
use styrmin_core::render::VALUES_FILE;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// The limits of one render.
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// minijinja fuel: about one unit an instruction or 64 bytes of data.
    pub fuel: u64,
    /// The longest a render may take, waiting for a free slot included.
    pub timeout: Duration,
    /// Renders that may run at once.
    pub slots: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            fuel: 2_000_000,
            timeout: Duration::from_secs(10),
            slots: 2,
        }
    }
}

/// Runs renders on blocking threads, at most `slots` at once.
pub struct Renderer {
    limits: RenderLimits,
    slots: Arc<Semaphore>,
}

impl Renderer {
    pub fn new(limits: RenderLimits) -> Renderer {
        Renderer {
            slots: Arc::new(Semaphore::new(limits.slots.max(1))),
            limits,
        }
    }

    /// The Helm values `template` renders from `context`; an absent template renders empty
    /// values. A template that runs out of fuel or time is a field error naming the limit.
    pub async fn values(
        &self,
        template: Option<String>,
        context: Value,
    ) -> ApiResult<Map<String, Value>> {
        let Some(source) = template else {
            return Ok(Map::new());
        };
        let RenderLimits { fuel, timeout, .. } = self.limits;
        let too_slow = || {
            ApiError::field(
                VALUES_FILE,
                format!(
                    "rendering for this deployment failed: it took longer than the server's limit of {} s per render",
                    timeout.as_secs_f64()
                ),
            )
        };
        let work = async {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
            tokio::task::spawn_blocking(move || {
                // The slot is held until the thread is done, even when the caller gave up.
                let _permit = permit;
                let mut compiled = ValuesTemplate::compile(&source)?;
                compiled.limit_fuel(fuel);
                compiled.render(&context)
            })
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("the render thread failed: {e}")))
        };
        let rendered = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| too_slow())??;
        rendered.map(|r| r.values).map_err(|e| {
            let text = e.to_string();
            let message = if text.contains("out of fuel") {
                format!(
                    "rendering for this deployment failed: the template did more work than the server's limit of {fuel} steps per render (a loop or a value too large?): {text}"
                )
            } else {
                format!("rendering for this deployment failed: {text}")
            };
            ApiError::field(VALUES_FILE, message)
        })
    }
}
