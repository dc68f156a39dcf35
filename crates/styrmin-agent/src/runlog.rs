//! A run's log lines go to the server in order, off the run's critical path: the steps
//! queue lines and carry on; a task sends them one after another; `flush` waits for all
//! of them before the run's outcome is reported.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::{AgentApi, Run};

type Line = (&'static str, String);

pub struct RunLog {
    sink: LogSink,
    sender: JoinHandle<()>,
}

/// Where a run's steps (and its actions, from other tasks) queue their lines.
#[derive(Clone)]
pub struct LogSink(mpsc::UnboundedSender<Line>);

impl LogSink {
    /// A sink whose lines go nowhere (work done outside a flow run, tests).
    pub fn detached() -> LogSink {
        LogSink(mpsc::unbounded_channel().0)
    }

    pub fn line(&self, level: &'static str, message: impl Into<String>) {
        let _ = self.0.send((level, message.into()));
    }
}

impl RunLog {
    pub fn start(api: AgentApi, run: Run) -> RunLog {
        let (lines, mut queued) = mpsc::unbounded_channel::<Line>();
        let sender = tokio::spawn(async move {
            while let Some((level, message)) = queued.recv().await {
                if let Err(e) = api.log(&run, level, &message).await {
                    tracing::warn!(run = run.id, error = %e, "cannot send a log line");
                }
            }
        });
        RunLog {
            sink: LogSink(lines),
            sender,
        }
    }

    pub fn sink(&self) -> &LogSink {
        &self.sink
    }

    pub fn line(&self, level: &'static str, message: impl Into<String>) {
        self.sink.line(level, message);
    }

    /// Every queued line sent. Lines queued by clones of the sink that are still alive
    /// (an action's task cut short) are not waited for.
    pub async fn flush(self) {
        let RunLog { sink, sender } = self;
        drop(sink);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), sender).await;
    }
}
