//! A run's log lines go to the server in order, off the run's critical path: the steps
//! queue lines and carry on; a task sends them one after another; `flush` waits for all
//! of them before the run's outcome is reported.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::{AgentApi, Run};

pub struct RunLog {
    lines: mpsc::UnboundedSender<(&'static str, String)>,
    sender: JoinHandle<()>,
}

impl RunLog {
    pub fn start(api: AgentApi, run: Run) -> RunLog {
        let (lines, mut queued) = mpsc::unbounded_channel::<(&'static str, String)>();
        let sender = tokio::spawn(async move {
            while let Some((level, message)) = queued.recv().await {
                if let Err(e) = api.log(&run, level, &message).await {
                    tracing::warn!(run = run.id, error = %e, "cannot send a log line");
                }
            }
        });
        RunLog { lines, sender }
    }

    pub fn line(&self, level: &'static str, message: impl Into<String>) {
        let _ = self.lines.send((level, message.into()));
    }

    /// Every queued line sent.
    pub async fn flush(self) {
        drop(self.lines);
        let _ = self.sender.await;
    }
}
